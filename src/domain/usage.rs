//! Last-used bookkeeping off the hot path: the token check only pushes a record into
//! a channel (throttled to one per token per minute unless the address changes); a
//! background task writes batches every second, and `flush` drains it at shutdown.
//! A new address also goes into the security log.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::cidr::ClientAddr;
use crate::store::{SecurityEventKind, Store, TokenRow, TokenUse};

const THROTTLE_MS: i64 = 60_000;

enum Msg {
    Use(TokenUse, i64, Option<String>),
    Flush(oneshot::Sender<()>),
}

/// Handle the token check records uses through.
#[derive(Debug)]
pub struct UsageRecorder {
    tx: mpsc::UnboundedSender<Msg>,
    recent: Mutex<HashMap<i64, (i64, ClientAddr)>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsageMsg")
    }
}

impl UsageRecorder {
    pub fn start(store: Store) -> UsageRecorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        UsageRecorder {
            tx,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Notes that `row` was used from `ip` at `now`. The common case (same token,
    /// same address, within the minute) only takes the map lock.
    pub fn record(&self, row: &TokenRow, ip: ClientAddr, now: i64) {
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, last_ip)) = recent.get(&row.id)
                && *last_ip == ip
                && now - at < THROTTLE_MS
            {
                return;
            }
            if recent.len() > 100_000 {
                recent.clear();
            }
            recent.insert(row.id, (now, ip));
        }
        let ip = ip.to_string();
        let new_address = match &row.last_used_ip {
            Some(prev) if *prev != ip => Some(prev.clone()),
            _ => None,
        };
        let _ = self.tx.send(Msg::Use(
            TokenUse {
                token_id: row.id,
                at: now,
                ip,
            },
            row.user_id,
            new_address.map(|_| row.display_prefix.clone()),
        ));
    }

    /// Writes everything recorded so far.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut pending: HashMap<i64, (TokenUse, i64, Option<String>)> = HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Use(u, user, new_addr)) => {
                    let id = u.token_id;
                    let keep_flag = pending.get(&id).and_then(|p| p.2.clone());
                    pending.insert(id, (u, user, new_addr.or(keep_flag)));
                }
                Some(Msg::Flush(done)) => {
                    write(&store, &mut pending).await;
                    let _ = done.send(());
                }
                None => {
                    write(&store, &mut pending).await;
                    return;
                }
            },
            _ = tick.tick() => write(&store, &mut pending).await,
        }
    }
}

async fn write(store: &Store, pending: &mut HashMap<i64, (TokenUse, i64, Option<String>)>) {
    if pending.is_empty() {
        return;
    }
    let batch: Vec<_> = pending.drain().map(|(_, v)| v).collect();
    let uses: Vec<TokenUse> = batch.iter().map(|(u, _, _)| u.clone()).collect();
    if let Err(e) = store.record_token_uses(&uses).await {
        tracing::warn!(error = %e, "could not record token use");
    }
    for (u, user, new_addr) in batch {
        if let Some(prefix) = new_addr {
            let detail = format!("token {prefix}… used from a new address");
            let _ = store
                .add_security_event(
                    user,
                    SecurityEventKind::TokenNewAddress,
                    &detail,
                    Some(&u.ip),
                    u.at,
                )
                .await;
        }
    }
}
