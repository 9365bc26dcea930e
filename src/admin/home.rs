//! `/admin`: managers and owners see the program dashboard ([`super::dashboard`]); a cashier
//! goes straight to the cashier screen from here.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AdminError;
use super::dashboard::{self, DashboardQuery, Period};
use super::session::{AnyStaff, StaffSession};
use crate::domain::Role;
use crate::state::AppState;

#[derive(Serialize)]
struct Home {
    cashier_only: bool,
    program_name: String,
}

/// `GET /admin[?program=…&days=…|from=…&to=…]`.
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<AnyStaff>,
    query: web::Query<DashboardQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    if session.staff.role == Role::Cashier {
        let program_name = state.program().await.map(|p| p.name).unwrap_or_default();
        return Ok(session.page(&req, "home.html", Home { cashier_only: true, program_name }));
    }
    let program = super::chosen_program(&state, &query.program).await?;
    let Some(period) = Period::of(&query, program.time_zone.date_of(state.clock.now())) else {
        return Ok(super::bad_form(&req, &session.viewer()));
    };
    let locale = super::page::locale(&req);
    let page = dashboard::page(&state, &program, period, locale, query.updated.is_some()).await?;
    Ok(session.page(&req, "home.html", page))
}
