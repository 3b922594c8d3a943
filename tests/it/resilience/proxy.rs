//! A TCP proxy in front of PostgreSQL with an outage switch: `cut` drops every live connection and
//! closes new ones at once; `restore` forwards again. The daemon reaches the database only through
//! it, while the test keeps its own direct connection to check what was stored.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Counters {
    /// Live connections dropped by `cut`.
    cut: AtomicUsize,
    /// Connections closed on arrival during an outage.
    refused: AtomicUsize,
}

pub struct PgProxy {
    addr: SocketAddr,
    database_url: url::Url,
    up: watch::Sender<bool>,
    counters: Arc<Counters>,
    acceptor: JoinHandle<()>,
}

impl PgProxy {
    /// Listens on a free loopback port and forwards to the host and port of `database_url`.
    pub async fn start(database_url: &str) -> Self {
        let database_url = url::Url::parse(database_url).expect("database URL");
        let upstream = format!(
            "{}:{}",
            database_url.host_str().expect("database host"),
            database_url.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let counters = Arc::new(Counters::default());
        let acceptor = tokio::spawn(accept(listener, upstream, up.clone(), counters.clone()));
        Self {
            addr,
            database_url,
            up,
            counters,
            acceptor,
        }
    }

    /// The database URL with the proxy as host and port.
    pub fn url(&self) -> String {
        let mut url = self.database_url.clone();
        url.set_ip_host(self.addr.ip()).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    pub fn connections_cut(&self) -> usize {
        self.counters.cut.load(Ordering::SeqCst)
    }

    pub fn connections_refused(&self) -> usize {
        self.counters.refused.load(Ordering::SeqCst)
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.up.send_replace(false);
    }
}

async fn accept(
    listener: TcpListener,
    upstream: String,
    up: watch::Sender<bool>,
    counters: Arc<Counters>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if !*up.borrow() {
            counters.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        tokio::spawn(forward(
            client,
            upstream.clone(),
            up.subscribe(),
            counters.clone(),
        ));
    }
}

async fn forward(
    mut client: TcpStream,
    upstream: String,
    mut up: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {
            counters.cut.fetch_add(1, Ordering::SeqCst);
        }
    }
    // Both sockets are dropped here: the daemon sees its connections die mid-conversation.
}
