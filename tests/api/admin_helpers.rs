//! Staff console helpers: staff accounts made in the store, and [`Staff`], a signed-in browser
//! (its session cookie and CSRF token) that the console tests drive over HTTP.

use loy::domain::{Role, StaffAccount};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::helpers::{TestApp, random_suffix};

/// A password good enough for the console.
pub const PASSWORD: &str = "correct horse battery";

/// A staff member signed in to the console.
pub struct Staff<'a> {
    pub app: &'a TestApp,
    pub id: String,
    pub email: String,
    /// The `loy_admin` cookie value.
    pub cookie: String,
    /// The session's CSRF token (from the page's `<meta name="csrf-token">`).
    pub csrf: String,
}

/// A plain HTTP answer: status, `Location`, body (HTML entities decoded).
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

async fn page_of(response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let location = headers.get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = unescape(&response.text().await.unwrap());
    Page { status, location, body, headers }
}

/// Undoes the HTML escaping the templates apply (minijinja escapes `/` too), so tests can look
/// for addresses and values as they are.
pub fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `loy_admin` cookie a response sets: its value and the whole `Set-Cookie` line.
pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<(String, String)> {
    headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        let value = line.strip_prefix("loy_admin=")?.split(';').next()?.to_owned();
        Some((value, line.to_owned()))
    })
}

/// The CSRF token a console page carries.
pub fn csrf_of(body: &str) -> Option<String> {
    let at = body.find(r#"<meta name="csrf-token" content=""#)?;
    let rest = &body[at + r#"<meta name="csrf-token" content=""#.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The text of the element with `id` (`<p ... id="ID">TEXT</p>` and the like).
pub fn text_of_id(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!(r#"id="{id}""#))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].trim().to_owned())
}

impl TestApp {
    /// A staff account of `role` with [`PASSWORD`], stored directly (as `loy staff add` does).
    pub async fn staff_account(&self, role: Role) -> StaffAccount {
        let email = format!("{}-{}@shop.example", role.as_str(), random_suffix());
        let hash = loy::admin::password::hash(PASSWORD.into()).await.unwrap();
        let account = StaffAccount::new(&email, role, hash, self.clock_now());
        self.store.insert_staff(&account).await.unwrap();
        account
    }

    /// The login form as a browser opens it: its token cookie and the same token in the form.
    pub async fn admin_login_form(&self) -> (String, String) {
        let page = page_of(self.client.get(self.url("/admin/login")).send().await.unwrap()).await;
        assert_eq!(page.status, 200);
        let cookie = page
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|line| Some(line.strip_prefix("loy_admin_login=")?.split(';').next()?.to_owned()))
            .expect("the login form sets its token cookie");
        let at = page.body.find(r#"name="csrf" value=""#).expect("the form carries its token") + 19;
        let token = page.body[at..at + page.body[at..].find('"').unwrap()].to_owned();
        (cookie, token)
    }

    /// `POST /admin/login` without a session, as a browser would after opening the form.
    pub async fn admin_login(&self, email: &str, password: &str) -> Page {
        let (cookie, token) = self.admin_login_form().await;
        let response = self
            .client
            .post(self.url("/admin/login"))
            .header(COOKIE, format!("loy_admin_login={cookie}"))
            .form(&[("email", email), ("password", password), ("next", "/admin"), ("csrf", &token)])
            .send()
            .await
            .unwrap();
        page_of(response).await
    }

    /// A GET to the console without a session.
    pub async fn admin_get_anonymous(&self, path: &str) -> Page {
        page_of(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// A new account of `role`, signed in.
    pub async fn signed_in(&self, role: Role) -> Staff<'_> {
        let account = self.staff_account(role).await;
        self.sign_in(&account.email, PASSWORD).await
    }

    /// Signs in with e-mail and password (no second factor) and reads the CSRF token.
    pub async fn sign_in(&self, email: &str, password: &str) -> Staff<'_> {
        let page = self.admin_login(email, password).await;
        assert_eq!(page.status, 303, "login of {email} failed: {}", page.body);
        let (cookie, _) = session_cookie(&page.headers).expect("the login sets the session cookie");
        self.staff_with_cookie(email, cookie).await
    }

    /// A [`Staff`] for a session cookie obtained otherwise (after a second factor, say).
    pub async fn staff_with_cookie(&self, email: &str, cookie: String) -> Staff<'_> {
        let account = self.store.staff_by_email(email).await.unwrap().expect("the account exists");
        let mut staff = Staff { app: self, id: account.id, email: email.to_owned(), cookie, csrf: String::new() };
        let home = staff.get("/admin/account").await;
        assert_eq!(home.status, 200, "{}", home.body);
        staff.csrf = csrf_of(&home.body).expect("console pages carry the CSRF token");
        staff
    }
}

impl Staff<'_> {
    pub fn cookie_header(&self) -> String {
        format!("loy_admin={}", self.cookie)
    }

    pub async fn get(&self, path: &str) -> Page {
        let response =
            self.app.client.get(self.app.url(path)).header(COOKIE, self.cookie_header()).send().await.unwrap();
        page_of(response).await
    }

    /// A form POST with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.csrf));
        self.post_raw(path, &form).await
    }

    /// A form POST exactly as given (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .app
            .client
            .post(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .form(fields)
            .send()
            .await
            .unwrap();
        page_of(response).await
    }

    /// An htmx-style POST: the token in the `X-CSRF-Token` header.
    pub async fn post_htmx(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .app
            .client
            .post(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .header("X-CSRF-Token", &self.csrf)
            .header("HX-Request", "true")
            .form(fields)
            .send()
            .await
            .unwrap();
        page_of(response).await
    }

    /// The audit entries of this staff member with `action`, newest first.
    pub async fn audit(&self, action: &str) -> Vec<loy::domain::AuditEntry> {
        audit_of(self.app, Some(&self.id), action).await
    }
}

/// Audit entries with `action` (of one staff member when `staff_id` is set), newest first.
pub async fn audit_of(app: &TestApp, staff_id: Option<&str>, action: &str) -> Vec<loy::domain::AuditEntry> {
    let filter = loy::domain::AuditFilter {
        staff_id: staff_id.map(str::to_owned),
        action: Some(action.to_owned()),
        ..Default::default()
    };
    app.store.audit_entries(&filter, 1000).await.unwrap()
}
