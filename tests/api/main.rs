//! Black-box tests: the application started on a random port, called over HTTP.

#[allow(dead_code)]
mod admin_helpers;
#[allow(dead_code)]
mod apple_support;
#[allow(dead_code)]
mod helpers;
#[path = "../common/phone.rs"]
mod phone;
mod smtp_sink;
mod stamps;
mod stamps_wallets;
mod webhook_receiver;

mod admin_audit;
mod admin_cashier;
mod admin_customers;
mod admin_dashboard;
mod admin_design;
mod admin_keys;
mod admin_login;
mod admin_messages;
mod admin_pages;
mod admin_programs;
mod admin_setup;
mod admin_staff;
mod admin_stamps;
mod admin_totp;

mod apns_stand_in;
mod apple_certs;
mod apple_lint;
mod apple_pass;
mod apple_webservice;
mod bad_input;

mod card_page;
mod cli;
mod demo;
mod enrollment;
mod enrollment_privacy;
mod form;
#[allow(dead_code)]
mod google_fake;
mod google_push;
mod google_save_link;
mod google_schema;
#[allow(dead_code)]
mod google_signer;
mod google_wallet;
mod health;
mod http_edges;
mod import_export;
mod import_panel;
mod input_phones;
mod ledger_races;
mod mail;
mod messages;
mod messages_auto;
mod migrate;
mod openapi;
mod pass_design;
mod passkit_abuse;
mod pos_access;
mod pos_api;
mod pos_races;
mod pos_rules;
mod programs_customers;
mod push;
mod push_fake;
mod rate_limits;
mod segments;
mod shutdown;
mod store_conformance;
mod store_customers_conformance;
mod store_imports_conformance;
mod store_outbox_conformance;
mod store_programs_conformance;
mod store_push_conformance;
mod store_segments_conformance;
mod store_staff_conformance;
mod store_stats_conformance;
mod store_wallet_events_conformance;
mod store_webhooks_conformance;
mod wallet_changes;
mod webhooks;
