//! A TCP proxy that adds network latency, for `make bench`: every byte
//! reaches the other side half the round trip later, in order, in both
//! directions, so each request on a kept-alive connection costs one round
//! trip more, whatever the protocol or the tool (rclone, s5cmd, aws-cli
//! and this pipe alike). It does not limit bandwidth and does not delay
//! the connection's setup. `tc netem` would be more faithful but needs a
//! kernel module this machine's containers lack.
//!
//! Usage: `latency_proxy <listen host:port> <upstream host:port> <round trip ms>`;
//! it prints `ready` once it listens and runs until killed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, round_trip_ms] = &args[..] else {
        eprintln!("usage: latency_proxy <listen host:port> <upstream host:port> <round trip ms>");
        std::process::exit(2);
    };
    let one_way = Duration::from_secs_f64(
        round_trip_ms.parse::<f64>().unwrap_or_else(|_| {
            eprintln!("the round trip must be a number of milliseconds, not {round_trip_ms:?}");
            std::process::exit(2);
        }) / 2000.0,
    );
    let listener = TcpListener::bind(listen).await?;
    println!("ready");
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                delayed(client_read, server_write, one_way),
                delayed(server_read, client_write, one_way),
            );
        });
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read; the end of
/// the stream is passed on the same way.
async fn delayed(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if chunks
                        .send((Instant::now() + delay, buffer[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping the sender tells the writer the stream ended, after the
        // chunks already queued.
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(delay).await;
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
