//! A TCP proxy between keyward and the test PostgreSQL server that a test can cut:
//! a database outage without stopping the server other tests share.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    address: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to the server named by `KEYWARD_TEST_POSTGRES_URL`.
    pub async fn to_test_postgres() -> Self {
        let url = std::env::var(keyward_store::testing::POSTGRES_URL_ENV).unwrap();
        Self::start(host_port(&url).to_owned()).await
    }

    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(watch::channel(true).0);
        let state = Arc::clone(&up);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !*state.borrow() {
                    // Down: the connection is closed as soon as it is made.
                    continue;
                }
                let mut down = state.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Cut: both sockets are dropped, which closes them.
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { address, up, task }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.up.send_replace(false);
        self.task.abort();
    }
}

/// `host:port` of a `postgres://user:password@host:port/database?options` URL.
pub fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// The same URL with `host:port` replaced by `address`.
pub fn redirect(url: &str, address: SocketAddr) -> String {
    url.replacen(host_port(url), &address.to_string(), 1)
}
