//! The `cells` command line: `start`, and the admin commands of SPEC section 2.
//!
//! Admin commands open the same database as the server, so they work whether or not it runs.
//! Errors go to stderr with a non-zero exit code; values meant for scripts go alone to stdout.

mod workspaces;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cells_store::{Profile, Token, TokenKind, User};
use clap::{Args, Parser, Subcommand};

use crate::Server;
use cells_core::auth::principal::Principal;
use cells_core::auth::scope::Scope;
use cells_core::auth::{Expiry, TokenRequest};
use cells_core::config::{Config, Overrides};
use cells_core::duration;
use cells_core::files::path::TreePath;
use cells_core::tokens;
use cells_core::users::{self, Actor, UserSpec};
use cells_core::{App, SharedApp};
use cells_http::encoding::http_date;

#[derive(Parser, Debug)]
#[command(
    name = "cells",
    version,
    about = "A self-hosted file server: REST, personal access tokens, one credential everywhere"
)]
pub struct Cli {
    /// Data directory (database, blobs, master key, pydio.json)
    #[arg(long, global = true, env = "CELLS_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Configuration file [default: DATA/pydio.json]
    #[arg(long, global = true, env = "CELLS_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in DATA]
    #[arg(long, global = true, env = "CELLS_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Where file content is kept: file://DIR or s3://BUCKET[/PREFIX] (endpoint, credentials
    /// and region from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)
    /// [default: file://DATA/blobs]
    #[arg(long, global = true, env = "CELLS_BLOB_STORE", value_name = "URL")]
    blob_store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (HTTP on --bind)
    Start(StartArgs),
    /// Administration commands
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Same as `cells admin user` (seed 002 writes `./cells user token …`)
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Args, Debug)]
struct StartArgs {
    /// HTTP listen address
    #[arg(long, env = "CELLS_BIND", value_name = "ADDR")]
    bind: Option<String>,
    /// SFTP listen address
    #[arg(long, env = "CELLS_SFTP_BIND", value_name = "ADDR")]
    sftp_bind: Option<String>,
    /// Public URL of this server [default: http://BIND, or https://BIND with TLS]
    #[arg(long, env = "CELLS_EXTERNAL_URL", value_name = "URL")]
    external_url: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (reloaded when it changes, or on SIGHUP)
    #[arg(long, env = "CELLS_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "CELLS_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Serve HTTPS with a self-signed certificate, made once in DATA/tls
    #[arg(long, env = "CELLS_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Plain-HTTP address that redirects browsers to HTTPS and refuses everything else
    #[arg(long, env = "CELLS_HTTP_REDIRECT_BIND", value_name = "ADDR")]
    http_redirect_bind: Option<String>,
    /// A reverse proxy's address range, trusted to name the client in X-Forwarded-For
    /// (repeatable)
    #[arg(
        long = "trusted-proxy",
        env = "CELLS_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// Longest wait for a database that does not answer before a request is told
    /// "unavailable" (30s, 10m, or seconds) [default: 5s]
    #[arg(long, value_name = "DURATION")]
    dependency_timeout: Option<String>,
    /// After SIGTERM, how long work in flight may take before the server exits [default: 30s]
    #[arg(long, value_name = "DURATION")]
    shutdown_timeout: Option<String>,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Manage users and their tokens
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Groups of users
    Group {
        #[command(subcommand)]
        command: workspaces::GroupCommand,
    },
    /// Workspaces, their grants and quotas
    Workspace {
        #[command(subcommand)]
        command: workspaces::WorkspaceCommand,
    },
    /// Inspect the file tree
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// OAuth clients of the OpenID provider
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Signing keys of the OpenID provider
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The SFTP server
    Sftp {
        #[command(subcommand)]
        command: SftpCommand,
    },
    /// WebDAV locks
    Lock {
        #[command(subcommand)]
        command: LockCommand,
    },
}

#[derive(Subcommand, Debug)]
enum LockCommand {
    /// List the live WebDAV locks: token, owner, path, scope, depth, expiry
    List {
        /// Only the locks this user took
        #[arg(short = 'u', long = "user")]
        login: Option<String>,
    },
    /// Break a lock: it stops holding at once, on every node
    Break {
        #[arg(value_name = "TOKEN")]
        token: String,
    },
}

#[derive(Subcommand, Debug)]
enum SftpCommand {
    /// Print the SFTP host key (OpenSSH public key line) and its SHA256 fingerprint, so that
    /// users can pin it; generated now if the server has not started yet
    HostKey,
}

#[derive(Subcommand, Debug)]
enum ClientCommand {
    /// List the default, configured and added clients
    List,
    /// Add a client from a Hydra client JSON file; a confidential client's secret is printed once
    Add {
        #[arg(long, value_name = "CLIENT.json")]
        file: PathBuf,
    },
    /// Delete an added client and revoke its grants
    Delete {
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// List signing keys: id, algorithm, state
    List,
    /// Make new signing keys; the old ones keep verifying until their tokens have expired
    Rotate,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user
    Create {
        #[arg(short = 'u', long = "user")]
        login: String,
        #[arg(short = 'p', long)]
        password: String,
        #[arg(long, default_value = "standard", value_parser = ["admin", "standard"])]
        profile: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long, default_value = "")]
        email: String,
    },
    /// List users
    List,
    /// Delete a user with their personal files and tokens
    Delete {
        #[arg(short = 'u', long = "user")]
        login: String,
    },
    /// Set a user's password
    SetPassword {
        #[arg(short = 'u', long = "user")]
        login: String,
        #[arg(short = 'p', long)]
        password: String,
    },
    /// Unlock an account locked after failed logins
    Unlock {
        #[arg(short = 'u', long = "user")]
        login: String,
    },
    /// Set or remove (none) the quota of a user's personal files: a size such as 10G
    SetQuota {
        #[arg(short = 'u', long = "user")]
        login: String,
        quota: String,
    },
    /// Generate a personal access token (or `token list`, `token revoke ID`)
    Token(TokenArgs),
    /// Register an SSH public key for SFTP logins (an OpenSSH .pub line: Ed25519 or ECDSA)
    AddKey {
        #[arg(short = 'u', long = "user")]
        login: String,
        /// The public key file (`-` reads standard input)
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// List a user's SSH keys
    ListKeys {
        #[arg(short = 'u', long = "user")]
        login: String,
    },
    /// Remove an SSH key by its fingerprint (SHA256:…)
    RemoveKey {
        #[arg(short = 'u', long = "user")]
        login: String,
        fingerprint: String,
    },
}

/// Generate a personal authentication token for a user.
///
/// Expiration is either a hard limit (-e, a duration such as 30s, 10m, 24h, 28d) or a sliding
/// window (-a, a duration or a number of seconds) that is pushed forward each time the token
/// is used. Tokens replace the Bearer access token on the REST API and the password on
/// Basic-auth protocols (WebDAV, SFTP). A scope node:NODE_UUID:PERMISSION (r, w or rw)
/// restricts the token to that file or folder and everything below it.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct TokenArgs {
    #[command(subcommand)]
    command: Option<TokenCommand>,
    /// User login (mandatory)
    #[arg(short = 'u', long = "user")]
    login: Option<String>,
    /// Expire after duration, e.g. 30s, 10m, 24h, 28d (hard limit)
    #[arg(short = 'e', long, allow_hyphen_values = true, conflicts_with = "auto")]
    expire: Option<String>,
    /// Auto-refresh window: seconds (600) or a duration (10m)
    #[arg(short = 'a', long, allow_hyphen_values = true)]
    auto: Option<String>,
    /// Optional scopes, node:NODE_UUID:r|w|rw (repeat, or separate with commas)
    #[arg(short = 's', long = "scope", value_delimiter = ',')]
    scopes: Vec<String>,
    /// A friendly name for the token
    #[arg(short = 'l', long, default_value = "")]
    label: String,
    /// With -a: absolute lifetime cap, however often the token is used
    #[arg(long, value_name = "DURATION", requires = "auto")]
    max_lifetime: Option<String>,
    /// Also print the token's own S3 key pair (with -q: only "ACCESS_KEY_ID SECRET")
    #[arg(long)]
    s3: bool,
    /// Only print the token value
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// List tokens (never their values)
    List {
        #[arg(short = 'u', long = "user")]
        login: Option<String>,
    },
    /// Revoke a token: it stops working at once
    Revoke {
        #[arg(value_name = "TOKEN_ID")]
        token_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Print the node UUID of a path such as personal-files/docs
    Stat {
        #[arg(value_name = "PATH")]
        path: String,
        /// Whose personal-files [default: CELLS_ADMIN_LOGIN, else the first administrator]
        #[arg(short = 'u', long = "user")]
        login: Option<String>,
        /// Print the whole node as JSON
        #[arg(long)]
        json: bool,
    },
}

/// Parse the command line and run it.
pub async fn main() -> ExitCode {
    // Everything we create (the database and its journal, blobs, keys, temp files) holds
    // password hashes, tokens' hashes or users' files: owner only, whatever the caller's umask.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    let is_server = matches!(cli.command, Command::Start(_));
    init_logging(if is_server { "info" } else { "warn" });
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `CELLS_LOG` is a level (`error`, `warn`, `info`, `debug`, `trace`) for our own code only:
/// dependencies stay at `info`, since some (hyper, h2, russh, sqlx) write raw traffic or query
/// parameters at `debug` and `trace`. `CELLS_LOG_UNSAFE_DEPENDENCIES` takes `EnvFilter`
/// directives for them, and may write secrets to the log (documented as unsafe).
fn init_logging(default: &str) {
    let level = std::env::var("CELLS_LOG").ok().filter(|v| !v.trim().is_empty());
    let level = match level.as_deref().map(str::trim).map(str::parse::<tracing::Level>) {
        Some(Ok(level)) => level.to_string().to_ascii_lowercase(),
        Some(Err(_)) => {
            eprintln!("warning: CELLS_LOG must be one of error, warn, info, debug, trace; using {default}");
            default.to_string()
        }
        None => default.to_string(),
    };
    let dependencies = if default == "info" { "info" } else { default };
    // Every crate of ours at the chosen level; dependencies stay at info unless asked.
    const CRATES: [&str; 9] = [
        "cells",
        "cells_core",
        "cells_store",
        "cells_http",
        "cells_rest",
        "cells_console",
        "cells_dav",
        "cells_s3",
        "cells_sftp",
    ];
    let mut filter = tracing_subscriber::EnvFilter::new(format!(
        "{dependencies},{}",
        CRATES.map(|name| format!("{name}={level}")).join(",")
    ));
    if let Ok(unsafe_directives) = std::env::var("CELLS_LOG_UNSAFE_DEPENDENCIES") {
        for directive in unsafe_directives.split(',').filter(|d| !d.trim().is_empty()) {
            match directive.trim().parse() {
                Ok(directive) => filter = filter.add_directive(directive),
                Err(error) => eprintln!("warning: CELLS_LOG_UNSAFE_DEPENDENCIES: {directive}: {error}"),
            }
        }
    }
    // s3s logs every client error at ERROR and, at DEBUG, whole requests with the access
    // key (a token, for us): never let it write. `s3::serve` logs what matters.
    let filter = filter.add_directive("s3s=off".parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides {
        data_dir: cli.data,
        config_file: cli.config,
        database_url: cli.database_url,
        blob_store: cli.blob_store,
        ..Overrides::default()
    };
    match cli.command {
        Command::Start(args) => {
            overrides.bind = args.bind;
            overrides.sftp_bind = args.sftp_bind;
            overrides.external_url = args.external_url;
            overrides.tls_cert = args.tls_cert;
            overrides.tls_key = args.tls_key;
            overrides.tls_self_signed = args.tls_self_signed;
            overrides.http_redirect_bind = args.http_redirect_bind;
            overrides.trusted_proxies = args.trusted_proxies;
            let flags = [
                ("dependency-timeout", args.dependency_timeout),
                ("shutdown-timeout", args.shutdown_timeout),
            ];
            overrides.limits = flags
                .into_iter()
                .filter_map(|(key, value)| value.map(|v| (key, v)))
                .collect();
            let server = Server::prepare(Config::load(overrides)?).await?;
            server.run(crate::shutdown_signal()).await
        }
        Command::Admin {
            command: AdminCommand::User { command },
        }
        | Command::User { command } => {
            let app = App::open(Config::load(overrides)?).await?;
            let outcome = user_command(&app, command).await;
            app.close().await;
            outcome
        }
        Command::Admin {
            command: AdminCommand::Group { command },
        } => {
            let app = App::open(Config::load(overrides)?).await?;
            let outcome = workspaces::group_command(&app, command).await;
            app.close().await;
            outcome
        }
        Command::Admin {
            command: AdminCommand::Workspace { command },
        } => {
            let app = App::open(Config::load(overrides)?).await?;
            let outcome = workspaces::workspace_command(&app, command).await;
            app.close().await;
            outcome
        }
        Command::Admin {
            command: AdminCommand::Node { command },
        } => {
            let app = App::open(Config::load(overrides)?).await?;
            let outcome = node_command(&app, command).await;
            app.close().await;
            outcome
        }
        Command::Admin {
            command: AdminCommand::Client { command },
        } => {
            let app = App::open(Config::load(overrides)?).await?;
            let outcome = client_command(&app, command).await;
            app.close().await;
            outcome
        }
        Command::Admin {
            command: AdminCommand::Lock { command },
        } => {
            let app = App::open(Config::load(overrides)?).await?;
            let outcome = lock_command(&app, command).await;
            app.close().await;
            outcome
        }
        Command::Admin {
            command: AdminCommand::Keys { command },
        } => {
            let app = App::open(Config::load(overrides)?).await?;
            let outcome = keys_command(&app, command).await;
            app.close().await;
            outcome
        }
        Command::Admin {
            command: AdminCommand::Sftp {
                command: SftpCommand::HostKey,
            },
        } => {
            // The key every node serves, from the database.
            let app = App::open(Config::load(overrides)?).await?;
            let key = cells_sftp::host_key(&app).await;
            app.close().await;
            let key = key?;
            // Written, not println!: `… | head -n 1` closing the pipe is no error.
            let text = format!(
                "{}\n{}\n",
                cells_sftp::public_line(&key)?,
                cells_sftp::fingerprint(&key)
            );
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
            Ok(())
        }
    }
}

async fn find_user(app: &SharedApp, login: &str) -> anyhow::Result<User> {
    users::find(app, login)
        .await?
        .with_context(|| format!("unknown user {login:?}"))
}

async fn user_command(app: &SharedApp, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            login,
            password,
            profile,
            display_name,
            email,
        } => {
            let profile = Profile::parse(&profile).context("profile must be admin or standard")?;
            let spec = UserSpec {
                login: &login,
                password: &password,
                profile,
                display_name: &display_name,
                email: &email,
            };
            let user = users::create_user(app, spec).await?;
            println!(
                "Created user {} ({}), id {}",
                user.login,
                user.profile.as_str(),
                user.id
            );
        }
        UserCommand::List => {
            println!(
                "{:<24} {:<9} {:<30} {:<24} EMAIL",
                "LOGIN", "PROFILE", "LOCKED", "DISPLAY NAME"
            );
            let now = cells_store::now();
            for user in users::list(app).await? {
                println!(
                    "{:<24} {:<9} {:<30} {:<24} {}",
                    user.login,
                    user.profile.as_str(),
                    users::lock_state(&user, now),
                    user.display_name,
                    user.email
                );
            }
        }
        UserCommand::Delete { login } => {
            let user = find_user(app, &login).await?;
            users::delete_user(app, Actor::Operator, &user).await?;
            println!("Deleted user {login} with their personal files and tokens");
        }
        UserCommand::SetPassword { login, password } => {
            let user = find_user(app, &login).await?;
            users::set_password(app, &user, &password).await?;
            println!("Password of {login} changed");
        }
        UserCommand::Unlock { login } => {
            let user = find_user(app, &login).await?;
            users::set_locked(app, Actor::Operator, &user, false).await?;
            println!("Unlocked {login} (an administrator's lock and a suspension after failed logins)");
        }
        UserCommand::SetQuota { login, quota } => workspaces::set_user_quota(app, &login, &quota).await?,
        UserCommand::Token(args) => token_command(app, args).await?,
        UserCommand::AddKey { login, file } => {
            let user = find_user(app, &login).await?;
            let line = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let key = users::add_ssh_key(app, &user, &line).await?;
            println!("Added the key {} for {login}", key.fingerprint);
        }
        UserCommand::ListKeys { login } => {
            let user = find_user(app, &login).await?;
            println!("{:<52} {:<30} COMMENT", "FINGERPRINT", "ADDED");
            for key in users::ssh_keys(app, &user).await? {
                println!(
                    "{:<52} {:<30} {}",
                    key.fingerprint,
                    http_date(key.created_at),
                    key.comment
                );
            }
        }
        UserCommand::RemoveKey { login, fingerprint } => {
            let user = find_user(app, &login).await?;
            users::remove_ssh_key(app, &user, &fingerprint).await?;
            println!("Removed the key {fingerprint} of {login}");
        }
    }
    Ok(())
}

async fn token_command(app: &SharedApp, args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        Some(TokenCommand::List { login }) => return list_tokens(app, login.as_deref()).await,
        Some(TokenCommand::Revoke { token_id }) => {
            let id = cells_core::records::TokenId::parse(&token_id)
                .ok_or_else(|| anyhow::anyhow!("{token_id:?} is not a token id"))?;
            match tokens::revoke(app, Actor::Operator, id).await {
                Ok(()) => println!("Revoked token {id}"),
                Err(cells_core::error::Error::NotFound(_)) => bail!("no token {id}"),
                Err(other) => return Err(other.into()),
            }
            return Ok(());
        }
        None => {}
    }
    let login = args.login.context("-u LOGIN is mandatory")?;
    let expiry = match (&args.expire, &args.auto) {
        (Some(expire), None) => Expiry::Hard(duration::parse(expire, false).context("-e")?),
        (None, Some(auto)) => Expiry::Sliding(duration::parse(auto, true).context("-a")?),
        _ => bail!("give exactly one of -e DURATION (hard limit) or -a DURATION (auto refresh)"),
    };
    let max_lifetime = args
        .max_lifetime
        .as_deref()
        .map(|text| duration::parse(text, false).context("--max-lifetime"))
        .transpose()?;
    let scopes = args
        .scopes
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let user = find_user(app, &login).await?;
    let (token, minted) = app
        .auth
        .create_token(
            &app.tree,
            TokenRequest {
                user: &user,
                kind: TokenKind::Personal,
                label: &args.label,
                expiry,
                max_lifetime,
                scopes: &scopes,
                created_by: "cli",
            },
        )
        .await?;
    let value = minted.value;
    let s3 = minted.s3.context("a personal token has an S3 key pair")?;
    if args.quiet {
        if args.s3 {
            println!("{} {}", s3.access_key_id, s3.secret);
        } else {
            println!("{value}");
        }
        return Ok(());
    }
    let when = http_date(token.expires_at);
    match expiry {
        Expiry::Hard(_) => println!("This token for {login} will expire on {when}."),
        Expiry::Sliding(window) => println!(
            "This token for {login} will expire on {when}, unless it is used before: each use \
             pushes the expiry {window} seconds ahead."
        ),
    }
    println!("{value}");
    println!(
        "Make sure to secure it as it grants access to the user resources! (token id {})",
        token.id
    );
    if args.s3 {
        println!("Its own S3 key pair (the token itself, with the gateway secret, works too):");
        println!("  AWS_ACCESS_KEY_ID={}", s3.access_key_id);
        println!("  AWS_SECRET_ACCESS_KEY={}", s3.secret);
    }
    Ok(())
}

async fn list_tokens(app: &SharedApp, login: Option<&str>) -> anyhow::Result<()> {
    let owner = match login {
        Some(login) => Some(find_user(app, login).await?),
        None => None,
    };
    let listed = tokens::list(app, Actor::Operator, owner.as_ref()).await?;
    println!(
        "{:<36}  {:<16} {:<20} {:<9} {:<16} {:<29} {:<40} SCOPES",
        "ID", "USER", "LABEL", "TYPE", "MODEL", "EXPIRES", "LAST USED"
    );
    let now = cells_store::now();
    for tokens::Listed { token, owner } in listed {
        println!("{}", token_line(&token, &owner, now));
    }
    Ok(())
}

fn token_line(token: &Token, login: &str, now: i64) -> String {
    let model = if token.auto_refresh > 0 {
        format!("auto {}s", token.auto_refresh)
    } else {
        "hard limit".to_string()
    };
    let expires = if token.expires_at < now {
        format!("expired {}", http_date(token.expires_at))
    } else {
        http_date(token.expires_at)
    };
    let last_used = match token.last_used_at {
        Some(at) => format!(
            "{} {} {}",
            http_date(at),
            token.last_used_protocol.as_deref().unwrap_or("-"),
            token.last_used_address.as_deref().unwrap_or("-")
        ),
        None => "never".to_string(),
    };
    let scopes = if token.scopes.is_empty() {
        "-"
    } else {
        token.scopes.as_str()
    };
    format!(
        "{:<36}  {:<16} {:<20} {:<9} {:<16} {:<29} {:<40} {}",
        token.id,
        login,
        token.label,
        token.kind.as_str(),
        model,
        expires,
        last_used,
        scopes
    )
}

async fn node_command(app: &SharedApp, command: NodeCommand) -> anyhow::Result<()> {
    let NodeCommand::Stat { path, login, json } = command;
    let default_admin = std::env::var("CELLS_ADMIN_LOGIN")
        .or_else(|_| std::env::var("PYDIO_ADMIN_USER_LOGIN"))
        .ok()
        .filter(|v| !v.is_empty());
    let user = match login.or(default_admin) {
        Some(login) => find_user(app, &login).await?,
        None => users::list(app)
            .await?
            .into_iter()
            .filter(|u| u.profile == Profile::Admin)
            .min_by_key(|u| u.created_at)
            .context("there is no administrator; give -u LOGIN")?,
    };
    let principal = Principal::acting_for(&user);
    let path = TreePath::parse(&path)?;
    let entry = app.tree.stat(&principal, &path).await?;
    if json {
        println!("{}", cells_rest::api::node_json(&entry));
    } else {
        println!("{}", entry.node().id);
    }
    Ok(())
}

async fn client_command(app: &SharedApp, command: ClientCommand) -> anyhow::Result<()> {
    use cells_core::auth::oidc::clients::{describe_alg, parse_client_file};
    match command {
        ClientCommand::List => {
            println!(
                "{:<24} {:<9} {:<13} {:<8} {:<48} REDIRECT URIS",
                "CLIENT ID", "SOURCE", "TYPE", "ID ALG", "GRANT TYPES"
            );
            for client in app.oidc.clients.list().await? {
                let source = client.source.as_str();
                let kind = if client.is_public() {
                    "public"
                } else {
                    "confidential"
                };
                let uris = match client.redirect_uris.len() {
                    0 => "-".to_string(),
                    1..=4 => client.redirect_uris.join(" "),
                    n => format!("{} … ({n} in all)", client.redirect_uris[..3].join(" ")),
                };
                println!(
                    "{:<24} {:<9} {:<13} {:<8} {:<48} {}",
                    client.id,
                    source,
                    kind,
                    describe_alg(&client),
                    client.grant_types.join(","),
                    uris
                );
            }
        }
        ClientCommand::Add { file } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let client = parse_client_file(&text)?;
            let (client, secret) = app.oidc.clients.add(client).await?;
            println!("Added client {}", client.id);
            if let Some(secret) = secret {
                println!("client_secret: {secret}");
                println!("It is shown only this once: keep it secret.");
            }
        }
        ClientCommand::Delete { client_id } => match app.oidc.clients.delete(&client_id).await {
            Ok(()) => {
                app.auth.settle().await;
                println!("Deleted client {client_id} and revoked its grants");
            }
            Err(cells_core::error::Error::NotFound(_)) => {
                bail!(
                    "no added client {client_id:?} (default and configured clients live in code and pydio.json)"
                )
            }
            Err(other) => return Err(other.into()),
        },
    }
    Ok(())
}

async fn keys_command(app: &SharedApp, command: KeysCommand) -> anyhow::Result<()> {
    use cells_core::auth::oidc::keys::alg_name;
    match command {
        KeysCommand::List => {
            println!("{:<28} {:<6} {:<30} STATE", "KID", "ALG", "CREATED");
            for key in app.oidc.keys.all() {
                let state = match (key.retired_at, key.expires_at) {
                    (None, _) => "signing".to_string(),
                    (Some(_), Some(until)) => format!("retired, verifies until {}", http_date(until)),
                    (Some(_), None) => "retired".to_string(),
                };
                println!(
                    "{:<28} {:<6} {:<30} {}",
                    key.kid,
                    alg_name(key.alg),
                    http_date(key.created_at),
                    state
                );
            }
        }
        KeysCommand::Rotate => {
            app.oidc.rotate_keys().await?;
            app.auth.settle().await;
            println!(
                "New signing keys are in use; the previous ones verify until their tokens have expired."
            );
        }
    }
    Ok(())
}

async fn lock_command(app: &App, command: LockCommand) -> anyhow::Result<()> {
    match command {
        LockCommand::List { login } => {
            println!(
                "{:<47} {:<16} {:<9} {:<8} {:<29} PATH",
                "TOKEN", "OWNER", "SCOPE", "DEPTH", "EXPIRES"
            );
            for lock in app.locks().all_live().await? {
                let owner = lock.principal.as_deref().unwrap_or("-");
                if login.as_deref().is_some_and(|login| login != owner) {
                    continue;
                }
                let expires = lock.expires_at.map_or_else(|| "never".to_string(), http_date);
                println!(
                    "{:<47} {:<16} {:<9} {:<8} {:<29} {}",
                    lock.token,
                    owner,
                    if lock.shared { "shared" } else { "exclusive" },
                    if lock.deep { "infinity" } else { "0" },
                    expires,
                    percent_decoded(&lock.path)
                );
            }
        }
        LockCommand::Break { token } => {
            let exists = app.locks().all_live().await?.iter().any(|l| l.token == token);
            if !exists {
                anyhow::bail!("no live lock {token}");
            }
            app.locks().delete(std::slice::from_ref(&token)).await?;
            println!("Broke lock {token}");
        }
    }
    Ok(())
}

/// A stored lock path as people read it.
fn percent_decoded(path: &str) -> String {
    String::from_utf8_lossy(&cells_core::files::path::percent_decode(path)).into_owned()
}
