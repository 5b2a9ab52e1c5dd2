//! A TCP relay in front of the mock that parses nothing: bytes in, bytes out.
//!
//! What it adds over the direct path is what any second hop costs on this machine (two
//! loopback sends, two wake-ups), with no HTTP, no routing and no telemetry. The latency
//! report shows it beside the gateway, so the gateway's own share can be read off.

use std::net::SocketAddr;

use anyhow::Result;
use tokio::net::TcpStream;

use crate::side_thread::SideThread;

pub struct Relay {
    pub addr: SocketAddr,
    _thread: SideThread,
}

impl Relay {
    pub fn start(upstream: SocketAddr) -> Result<Self> {
        let (addr, thread) = SideThread::serve_tcp("tcp-relay", move |listener| async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = relay(client, upstream).await;
                });
            }
        })?;
        Ok(Self {
            addr,
            _thread: thread,
        })
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn relays_bytes_both_ways_unchanged() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            buf.reverse();
            s.write_all(&buf).await.unwrap();
        });
        let relay = Relay::start(echo_addr).unwrap();
        let mut c = TcpStream::connect(relay.addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"olleh");
    }
}
