//! The `cells` binary: see `cells --help`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    cells_server::cli::main().await
}
