//! `/admin`: a cashier goes straight to the cashier screen from here; managers and owners see
//! how many cards and staff accounts there are and where to go next.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AdminError;
use super::session::{AnyStaff, StaffSession};
use crate::domain::Role;
use crate::state::AppState;

#[derive(Serialize)]
struct Home {
    cashier_only: bool,
    cards: u64,
    staff_active: usize,
    program_name: String,
}

/// `GET /admin`.
pub async fn show(
    state: web::Data<AppState>,
    session: StaffSession<AnyStaff>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let cashier_only = session.staff.role == Role::Cashier;
    let (cards, staff_active) = if cashier_only {
        (0, 0)
    } else {
        let cards = state.store.count_cards().await?;
        let staff = state.store.staff_list().await?;
        (cards, staff.iter().filter(|s| !s.disabled).count())
    };
    let program_name = state.program().await.map(|p| p.name).unwrap_or_default();
    Ok(session.page(&req, "home.html", Home { cashier_only, cards, staff_active, program_name }))
}
