//! `/admin/data`: owners download the customers and the transactions of a period as CSV,
//! streamed from the store as it is read; every download is recorded in the audit log. The
//! import is run with `loy import customers` on the server (an upload form is not built yet).

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
struct DataPage {}

/// `GET /admin/data`.
pub async fn show(session: StaffSession<Owner>, req: HttpRequest) -> Result<HttpResponse, AdminError> {
    Ok(session.page(&req, "data.html", DataPage {}))
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
