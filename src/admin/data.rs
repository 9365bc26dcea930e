//! `/admin/data`: owners download the customers and the transactions of a period as CSV,
//! streamed from the store as it is read; every download is recorded in the audit log. The
//! same page uploads a file to import (see [`super::imports`]) and lists the latest imports.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::audit;
use super::session::{Owner, StaffSession};
use crate::import::export::{self, Period};
use crate::state::AppState;

#[derive(Serialize)]
pub struct DataPage {
    /// Why the last upload was refused (a key of the catalog's `data` table).
    upload_error: Option<&'static str>,
    max_megabytes: usize,
    imports: Vec<ImportRow>,
}

#[derive(Serialize)]
struct ImportRow {
    id: String,
    file_name: String,
    state: &'static str,
    created_at: String,
    percent: u64,
}

/// The data page's content.
pub async fn page(state: &AppState, upload_error: Option<&'static str>) -> Result<DataPage, AdminError> {
    let imports = super::imports::recent(state)
        .await?
        .into_iter()
        .map(|job| ImportRow {
            percent: if job.state.runnable() && job.total == 0 { 0 } else { job.percent() },
            id: job.id,
            file_name: job.file_name,
            state: job.state.as_str(),
            created_at: job.created_at.format("%Y-%m-%d %H:%M").to_string(),
        })
        .collect();
    Ok(DataPage { upload_error, max_megabytes: crate::import::jobs::MAX_FILE_BYTES / (1024 * 1024), imports })
}

/// `GET /admin/data`.
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    Ok(session.page(&req, "data.html", page(&state, None).await?))
}

#[derive(Debug, Deserialize)]
pub struct PeriodQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// An empty field means an open end; anything else must be a date (`Err` otherwise).
fn day(value: Option<&str>) -> Result<Option<NaiveDate>, ()> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d").map(Some).map_err(|_| ()),
    }
}

fn csv_response(
    name: &str,
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, crate::store::StoreError>>,
) -> HttpResponse {
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk.map(actix_web::web::Bytes::from), rx))
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body)
}

/// `GET /admin/data/customers.csv`.
pub async fn customers(state: web::Data<AppState>, session: StaffSession<Owner>) -> Result<HttpResponse, AdminError> {
    audit::record(&state, &session, "data.export_customers", None, serde_json::json!({})).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = state.store.clone();
    tokio::spawn(async move { export::export_customers(store.as_ref(), tx).await });
    Ok(csv_response("customers.csv", rx))
}

/// `GET /admin/data/transactions.csv?from=YYYY-MM-DD&to=YYYY-MM-DD`.
pub async fn transactions(
    state: web::Data<AppState>,
    session: StaffSession<Owner>,
    query: web::Query<PeriodQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let (Ok(from), Ok(to)) = (day(query.from.as_deref()), day(query.to.as_deref())) else {
        return Ok(super::bad_form(&req, &session.viewer()));
    };
    let period = Period { from, to };
    let details = serde_json::json!({ "from": period.from, "to": period.to });
    audit::record(&state, &session, "data.export_transactions", None, details).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = state.store.clone();
    tokio::spawn(async move { export::export_transactions(store.as_ref(), period, tx).await });
    Ok(csv_response("transactions.csv", rx))
}
