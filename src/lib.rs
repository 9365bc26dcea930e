//! loy: a self-hosted server that issues loyalty cards into Apple Wallet and Google Wallet and
//! keeps them up to date. `docs/architecture.md` is the map of this crate.
#![forbid(unsafe_code)]

pub mod admin;
pub mod apple;
pub mod card_page;
pub mod cli;
pub mod clock;
pub mod config;
pub mod customers;
pub mod demo;
pub mod domain;
pub mod enrollment;
pub mod google;
pub mod http;
pub mod import;
pub mod ledger;
pub mod mail;
pub mod maintenance;
pub mod messages;
pub mod metrics;
pub mod pos;
pub mod programs;
pub mod push;
pub mod rate_limit;
pub mod routes;
pub mod segments;
pub mod startup;
pub mod state;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod wallet_changes;
pub mod webhooks;
