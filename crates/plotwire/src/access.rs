//! `plotwire keys` (the auth file: a share secret and hashed API keys) and `plotwire
//! share` (a read-only link to a document). `docs/access.md` tells the whole story.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use plotwire_server::access::keys::{new_key, new_secret, KeyHash};
use plotwire_server::access::rules::{Rules, Scope};

use crate::remote::RemoteArgs;

/// `plotwire keys` subcommands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Write a new auth file with a random share secret (mode 0600).
    Init(InitArgs),
    /// Add an API key to the auth file and print it, once.
    Add(AddArgs),
    /// List the keys of the auth file and their scopes (never the keys).
    List(ListArgs),
}

/// `plotwire keys init` arguments.
#[derive(Args)]
#[command(after_help = "Example:\n  plotwire keys init plotwire-auth.toml --private 'team/*'")]
pub struct InitArgs {
    /// The auth file to write (must not exist).
    file: PathBuf,
    /// A pattern of private documents (`*` matches any characters); repeat for more.
    #[arg(long)]
    private: Vec<String>,
}

/// `plotwire keys add` arguments.
#[derive(Args)]
#[command(
    after_help = "Scopes: read:PATTERN, write:PATTERN (includes read), publish:PATTERN (includes write), admin, metrics.\n\nExample:\n  plotwire keys add plotwire-auth.toml trainer --scope 'write:runs/*'\n  kill -HUP $(pidof plotwire)    # a running server reloads the file"
)]
pub struct AddArgs {
    /// The auth file.
    file: PathBuf,
    /// A name for the key, for logs and messages.
    name: String,
    /// What the key may do; repeat for more.
    #[arg(long, required = true)]
    scope: Vec<String>,
}

/// `plotwire keys list` arguments.
#[derive(Args)]
pub struct ListArgs {
    /// The auth file.
    file: PathBuf,
}

/// Runs a `plotwire keys` subcommand.
pub fn keys(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::Init(a) => init(&a.file, &a.private),
        KeysCommand::Add(a) => add(&a.file, &a.name, &a.scope),
        KeysCommand::List(a) => list(&a.file),
    }
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn init(file: &Path, private: &[String]) -> Result<(), String> {
    let patterns: Vec<String> = private.iter().map(|p| toml_string(p)).collect();
    let text = format!(
        "# plotwire auth file (docs/access.md). Keep it private: the share secret signs share\n\
         # links. `plotwire keys add` adds keys; a running server rereads it on SIGHUP.\n\
         share_secret = {}\n\
         # Documents only keys and share links may see; `*` matches any characters.\n\
         private = [{}]\n",
        toml_string(&new_secret()),
        patterns.join(", ")
    );
    Rules::parse(&text).map_err(|e| e.to_string())?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(file)
        .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    out.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    eprintln!(
        "plotwire keys: wrote {}; start the server with --auth-file {}",
        file.display(),
        file.display()
    );
    Ok(())
}

fn read(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

fn add(file: &Path, name: &str, scopes: &[String]) -> Result<(), String> {
    for s in scopes {
        Scope::parse(s)?;
    }
    let old = read(file)?;
    let key = new_key();
    let scopes: Vec<String> = scopes.iter().map(|s| toml_string(s)).collect();
    let mut text = old.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "\n[[keys]]\nname = {}\nhash = \"{}\"\nscopes = [{}]\n",
        toml_string(name),
        KeyHash::of(&key),
        scopes.join(", ")
    ));
    Rules::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    // Written beside the file and renamed over it: a crash leaves the old file or the new.
    let temp = file.with_extension("toml.new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(&temp)
        .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
    std::fs::rename(&temp, file).map_err(|e| format!("cannot replace {}: {e}", file.display()))?;
    println!("{key}");
    eprintln!(
        "plotwire keys: added {name:?} to {}. The key above is shown only this once; the file keeps its hash. \
         A running server picks it up on SIGHUP.",
        file.display()
    );
    Ok(())
}

fn list(file: &Path) -> Result<(), String> {
    let rules = Rules::parse(&read(file)?).map_err(|e| format!("{}: {e}", file.display()))?;
    for key in &rules.keys {
        let scopes: Vec<String> = key.scopes.iter().map(describe).collect();
        println!("{}\t{}", key.name, scopes.join(" "));
    }
    eprintln!(
        "plotwire keys: {} keys, {} private patterns, share links {}",
        rules.keys.len(),
        rules.private.len(),
        if rules.share_secret.is_some() {
            "on"
        } else {
            "off (no share_secret)"
        }
    );
    Ok(())
}

fn describe(scope: &Scope) -> String {
    use plotwire_server::access::Level;
    match scope {
        Scope::Admin => "admin".to_owned(),
        Scope::Metrics => "metrics".to_owned(),
        Scope::Documents(level, pattern) => {
            let level = match level {
                Level::Read => "read",
                Level::Write => "write",
                Level::Publish => "publish",
            };
            format!("{level}:{pattern}")
        }
    }
}

/// `plotwire share` arguments.
#[derive(Args)]
#[command(
    after_help = "Example:\n  PLOTWIRE_KEY=pwk_... plotwire share team/board --expires 7d\n\nPrints the link. Anyone holding it may view and read that one document until it expires."
)]
pub struct ShareArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The document name.
    name: String,
    /// How long the link works: 30m, 12h, 7d, 2w (at most the auth file's max_share_days).
    #[arg(long, default_value = "7d")]
    expires: String,
}

/// Asks the server for a share link and prints it, absolute.
pub async fn share(args: ShareArgs) -> Result<(), String> {
    let client = args.remote.client()?;
    let shared = client
        .share(&args.name, Some(&args.expires))
        .await
        .map_err(|e| e.to_string())?;
    let base = args.remote.url.trim_end_matches('/');
    let base = if base.contains("://") {
        base.to_owned()
    } else {
        format!("http://{base}")
    };
    // The server's URL already ends with the prefix the answer's URL starts with.
    let origin_end = base
        .find("://")
        .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(base.len());
    println!("{}{}", &base[..origin_end], shared.url);
    eprintln!("plotwire share: expires {}", shared.expires);
    Ok(())
}
