//! The integration test binary: one real server per test (see `harness`), one file per area.
#![allow(async_fn_in_trait, reason = "test-only traits, used with static dispatch")]

mod access_matrix;
mod harness;

mod architecture;
mod clients;
mod cluster;
mod console;
mod crash;
mod dav;
mod faults;
mod https;
mod objectstore;
mod oidc;
mod oidc_rp;
mod rest;
mod s3;
mod security;
mod sftp;
mod store;
mod tokens;
mod workspaces;
