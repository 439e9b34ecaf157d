//! What every subcommand that talks to a running server shares: where it is.

use clap::Args;
use plotwire_client::Client;

/// `--url`, with `PLOTWIRE_URL` as its fallback.
#[derive(Args)]
pub struct RemoteArgs {
    /// The plotwire server: `http://host:port[/prefix]` or `host:port`.
    #[arg(long, env = "PLOTWIRE_URL", default_value = "http://127.0.0.1:5006")]
    pub url: String,
    /// The API key to send, for a server with access control on (`plotwire keys add` makes one).
    #[arg(long, env = "PLOTWIRE_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

impl RemoteArgs {
    /// A client of the server.
    pub fn client(&self) -> Result<Client, String> {
        let client = Client::new(&self.url).map_err(|e| e.to_string())?;
        Ok(match &self.key {
            Some(key) => client.with_key(key),
            None => client,
        })
    }
}
