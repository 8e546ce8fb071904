//! Tunnels: after a `101 Switching Protocols`, the client's and the upstream's connections
//! are joined and bytes are copied both ways until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::pool::Lease;

/// Spawns the task that joins the two upgraded connections. The lease keeps the tunnel
/// counted as a request in flight on its target until the tunnel closes.
pub(crate) fn spawn_tunnel(client: OnUpgrade, upstream: OnUpgrade, lease: Lease) {
    tokio::spawn(async move {
        let _lease = lease;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed before the tunnel opened");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((sent, received)) => tracing::debug!(sent, received, "tunnel closed"),
            Err(error) => tracing::debug!(%error, "tunnel closed with an error"),
        }
    });
}
