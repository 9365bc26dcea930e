//! Black-box tests: the application started on a random port, called over HTTP.

#[allow(dead_code)]
mod apple_support;
#[allow(dead_code)]
mod helpers;

mod apple_certs;
mod apple_lint;
mod apple_pass;
mod apple_webservice;

mod card_page;
mod enrollment;
mod form;
mod health;
mod store_conformance;
