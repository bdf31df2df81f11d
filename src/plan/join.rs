//! Local files and listed objects side by side, by key: the one walk the
//! planner makes over both. Both come sorted by key (the scan sorts; S3
//! lists in UTF-8 binary order, which is `str`'s), so a merge pairs them in
//! one pass, where a map of a million listed keys cost 50 MB and a hash or
//! a pointer chase per file. Input out of order is put in order first
//! (as references): a file that missed its object would be uploaded again
//! and, worse, the object deleted.

use std::cmp::Ordering;

use crate::model::{LocalFile, RemoteObject};

/// One key of the merge.
#[derive(Debug, Clone, Copy)]
pub enum Side<'l, 'r> {
    /// A file with no listed object: new.
    Local(&'l LocalFile),
    /// A listed object with no file: deleted or kept.
    Remote(&'r RemoteObject),
    Both(&'l LocalFile, &'r RemoteObject),
}

impl<'l, 'r> Side<'l, 'r> {
    pub fn file(self) -> Option<&'l LocalFile> {
        match self {
            Side::Local(file) | Side::Both(file, _) => Some(file),
            Side::Remote(_) => None,
        }
    }

    pub fn object(self) -> Option<&'r RemoteObject> {
        match self {
            Side::Remote(obj) | Side::Both(_, obj) => Some(obj),
            Side::Local(_) => None,
        }
    }
}

/// Every file and every listed object once, in key order, paired when they
/// share a key. Of files with one key (which the scan reports as a
/// problem), the first gets the object.
pub fn by_key<'l, 'r>(
    local: &'l [LocalFile],
    remote: &'r [RemoteObject],
) -> impl Iterator<Item = Side<'l, 'r>> {
    Merge {
        local: InOrder::new(local, |f| &f.key),
        remote: InOrder::new(remote, |r| &r.key),
        at: (0, 0),
    }
}

/// Only the files, each with its object if listed.
pub fn files<'l, 'r>(
    local: &'l [LocalFile],
    remote: &'r [RemoteObject],
) -> impl Iterator<Item = (&'l LocalFile, Option<&'r RemoteObject>)> {
    by_key(local, remote).filter_map(|side| Some((side.file()?, side.object())))
}

/// A slice in key order: itself when it already is (the usual case: no
/// allocation), else its references sorted.
enum InOrder<'a, T> {
    Sorted(&'a [T]),
    Refs(Vec<&'a T>),
}

impl<'a, T> InOrder<'a, T> {
    fn new(items: &'a [T], key: fn(&T) -> &str) -> Self {
        if items.is_sorted_by(|a, b| key(a) <= key(b)) {
            InOrder::Sorted(items)
        } else {
            let mut refs: Vec<&T> = items.iter().collect();
            refs.sort_by(|a, b| key(a).cmp(key(b)));
            InOrder::Refs(refs)
        }
    }

    fn get(&self, at: usize) -> Option<&'a T> {
        match self {
            InOrder::Sorted(items) => items.get(at),
            InOrder::Refs(refs) => refs.get(at).copied(),
        }
    }
}

struct Merge<'l, 'r> {
    local: InOrder<'l, LocalFile>,
    remote: InOrder<'r, RemoteObject>,
    at: (usize, usize),
}

impl<'l, 'r> Iterator for Merge<'l, 'r> {
    type Item = Side<'l, 'r>;

    fn next(&mut self) -> Option<Side<'l, 'r>> {
        let (l, r) = self.at;
        let side = match (self.local.get(l), self.remote.get(r)) {
            (None, None) => return None,
            (Some(file), None) => Side::Local(file),
            (None, Some(obj)) => Side::Remote(obj),
            (Some(file), Some(obj)) => match file.key.as_str().cmp(obj.key.as_str()) {
                Ordering::Less => Side::Local(file),
                Ordering::Greater => Side::Remote(obj),
                Ordering::Equal => Side::Both(file, obj),
            },
        };
        self.at = match side {
            Side::Local(_) => (l + 1, r),
            Side::Remote(_) => (l, r + 1),
            Side::Both(..) => (l + 1, r + 1),
        };
        Some(side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ETag, Key, Prefix};
    use std::path::Path;

    fn file(key: &str) -> LocalFile {
        LocalFile::new(
            Path::new("/site").to_path_buf().into(),
            &Prefix::default(),
            key,
            1,
        )
    }

    fn obj(key: &str) -> RemoteObject {
        RemoteObject {
            key: Key::new(key),
            size: 1,
            etag: ETag::new("x"),
            last_modified: 0,
        }
    }

    fn walk(local: &[LocalFile], remote: &[RemoteObject]) -> Vec<String> {
        by_key(local, remote)
            .map(|side| match side {
                Side::Local(f) => format!("L {}", f.key),
                Side::Remote(r) => format!("R {}", r.key),
                Side::Both(f, r) => format!("B {} {}", f.key, r.key),
            })
            .collect()
    }

    #[test]
    fn pairs_equal_keys_and_keeps_the_rest_in_key_order() {
        let local = [file("a"), file("b/c"), file("d")];
        let remote = [obj("b/c"), obj("b0"), obj("d"), obj("e")];
        assert_eq!(
            walk(&local, &remote),
            ["L a", "B b/c b/c", "R b0", "B d d", "R e"]
        );
        assert_eq!(walk(&[], &remote).len(), 4);
        assert_eq!(walk(&local, &[]), ["L a", "L b/c", "L d"]);
    }

    #[test]
    fn input_out_of_order_is_paired_all_the_same() {
        // A file that missed its object would be uploaded and the object
        // deleted: order must not decide what pairs.
        let local = [file("d"), file("a"), file("b/c")];
        let remote = [obj("e"), obj("d"), obj("b/c"), obj("b0")];
        assert_eq!(
            walk(&local, &remote),
            ["L a", "B b/c b/c", "R b0", "B d d", "R e"]
        );
    }

    #[test]
    fn of_two_files_with_one_key_the_first_gets_the_object() {
        let local = [file("a"), file("a")];
        let remote = [obj("a")];
        assert_eq!(walk(&local, &remote), ["B a a", "L a"]);
        let files: Vec<bool> = files(&local, &remote).map(|(_, o)| o.is_some()).collect();
        assert_eq!(files, [true, false]);
    }
}
