//! Static files from `public/static/`, embedded in the binary (one file runs everywhere).

use actix_web::{HttpResponse, web};

use super::pages::PUBLIC;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    if path.contains("..") {
        return HttpResponse::NotFound().finish();
    }
    match PUBLIC.get_file(format!("static/{path}")) {
        Some(file) => HttpResponse::Ok()
            .content_type(content_type(&path))
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(file.contents()),
        None => HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("Not found"),
    }
}
