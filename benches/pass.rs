//! How fast loy builds and signs Apple passes, and how fast it serves an unchanged one.
//!
//!     cargo bench --bench pass
//!
//! Prints passes built and signed per second on one core (the default design, a heavier one
//! with ~400 KB of images, and a stamp card whose strip is drawn on first use and then kept),
//! where the time goes, and the latency of a cached pass and of a 304 over HTTP. `docs/BENCHMARKS.md` records the figures next to `openssl speed rsa2048`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use loy::apple::bundle::{Entry, sha1_hex, zip};
use loy::apple::dev_certs;
use loy::apple::pass::PassBuilder;
use loy::apple::signer::sign_manifest;
use loy::apple::template::Template;
use loy::config::{KEYS, RawSettings, Settings};
use loy::domain::{Card, Currency, Customer, Locale, PassTypeId, PersonName, Phone, Program};
use loy::startup::Application;

const ROUNDS: usize = 5;
const PASSES_PER_ROUND: usize = 2000;
const REQUESTS: usize = 3000;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pass_type = PassTypeId::parse("pass.dev.loy.loyalty").unwrap();
    let (identity, _) = dev_certs::load_or_generate(&dir.path().join("certs"), &pass_type, "LOYDEVTEAM").unwrap();
    let now = Utc::now();
    let program = Program::new("default", "Coffee House", Currency::parse("RUB").unwrap(), now);
    let (card, _) = Card::enroll(&program, customer(now), None, now);

    println!("loy pass benchmark: {} passes per round, median of {ROUNDS} rounds, one thread", PASSES_PER_ROUND);
    let default = Template::builtin().unwrap();
    let heavy = heavy_template();
    for (name, template) in [("default design", &default), ("heavy design", &heavy)] {
        let images: usize = template.files.iter().map(|f| f.bytes.len()).sum();
        let builder =
            PassBuilder { identity: &identity, template, web_service_url: "https://loyalty.example.com/passkit" };
        let size = builder.build(&card, &program).unwrap().len();
        let rate = median_rate(|| {
            std::hint::black_box(builder.build(&card, &program).unwrap());
        });
        println!("{name}: {rate:.0} passes/s ({} KB of template files, {} KB per .pkpass)", images / 1024, size / 1024);
    }
    stamp_card_benchmark(&identity, &default, &program, &card);

    // Where the time of one default pass goes.
    let builder =
        PassBuilder { identity: &identity, template: &default, web_service_url: "https://loyalty.example.com/passkit" };
    let pass_json = builder.pass_json(&card, &program).unwrap();
    let manifest = br#"{"icon.png":"0000000000000000000000000000000000000000","pass.json":"0000000000000000000000000000000000000000"}"#;
    let per_op = |rate: f64| 1e6 / rate;
    let render = median_rate(|| {
        std::hint::black_box(builder.pass_json(&card, &program).unwrap());
    });
    let hash = median_rate(|| {
        std::hint::black_box(sha1_hex(&pass_json));
    });
    let sign = median_rate(|| {
        std::hint::black_box(sign_manifest(&identity, manifest).unwrap());
    });
    let signature = sign_manifest(&identity, manifest).unwrap();
    let zip_with = |deflate_text: bool| {
        median_rate(|| {
            let mut entries = vec![Entry { name: "pass.json", bytes: &pass_json, stored: !deflate_text }];
            entries.extend(default.files.iter().map(|f| Entry {
                name: &f.name,
                bytes: &f.bytes,
                stored: f.stored || !deflate_text,
            }));
            entries.push(Entry { name: "manifest.json", bytes: manifest, stored: !deflate_text });
            entries.push(Entry { name: "signature", bytes: &signature, stored: true });
            std::hint::black_box(zip(&entries).unwrap());
        })
    };
    let (zipped, stored) = (zip_with(true), zip_with(false));
    println!(
        "one default pass: render pass.json {:.1} µs, SHA-1 of it {:.1} µs, PKCS#7 signature {:.1} µs, \
         zip {:.1} µs (everything stored: {:.1} µs)",
        per_op(render),
        per_op(hash),
        per_op(sign),
        per_op(zipped),
        per_op(stored)
    );

    serve_benchmark(dir.path());
}

/// A 10-stamp card with 4 stamps: its three strips drawn once (as `DesignFileCache::for_card`
/// does on the first pass of that count), then every pass built with them.
fn stamp_card_benchmark(
    identity: &loy::apple::certs::SigningIdentity,
    template: &Template,
    program: &Program,
    card: &Card,
) {
    use loy::apple::design_files::DesignFiles;
    use loy::domain::{ProgramRules, StampRules};
    use loy::programs::stamp_strips::{APPLE_STRIPS, StripKey, style};
    let mut stamps = program.clone();
    stamps.rules = ProgramRules::stamps(StampRules::default());
    let mut card = card.clone();
    card.balance = 4;
    let key = StripKey::of(&stamps, stamps.rules.stamp_rules().unwrap(), card.balance);
    let mut draws = Vec::new();
    let mut files = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        files = APPLE_STRIPS
            .iter()
            .map(|(name, w, h)| {
                ((*name).to_owned(), loy::programs::stamp_strip::render_png(&style(&key, None), *w, *h))
            })
            .collect();
        draws.push(started.elapsed());
    }
    draws.sort();
    let design = DesignFiles::new(Default::default(), files);
    let builder = PassBuilder { identity, template, web_service_url: "https://loyalty.example.com/passkit" };
    let size = builder.build_with(&card, &stamps, &design).unwrap().len();
    let rate = median_rate(|| {
        std::hint::black_box(builder.build_with(&card, &stamps, &design).unwrap());
    });
    println!(
        "stamp card, strip cached: {rate:.0} passes/s ({} KB per .pkpass); drawing its three strips on first use: {:.1} ms",
        size / 1024,
        draws[ROUNDS / 2].as_secs_f64() * 1e3
    );
}

fn customer(now: chrono::DateTime<Utc>) -> Customer {
    Customer {
        first_name: PersonName::parse("Anna").unwrap(),
        last_name: Some(PersonName::parse("Ivanova").unwrap()),
        phone: Phone::parse("+79123456789", loy::domain::PhoneRegion::RU).unwrap(),
        email: None,
        birthday: None,
        locale: Locale::Ru,
        consent_at: now,
    }
}

/// Runs `f` [`PASSES_PER_ROUND`] times per round; the median rate in calls per second.
fn median_rate(mut f: impl FnMut()) -> f64 {
    f();
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..PASSES_PER_ROUND {
                f();
            }
            PASSES_PER_ROUND as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

/// The default design with photo-like strip images (noise does not compress): ~400 KB in all.
fn heavy_template() -> Template {
    let mut files: Vec<(String, Vec<u8>)> = Template::builtin()
        .unwrap()
        .files
        .iter()
        .filter(|f| !f.name.starts_with("strip"))
        .map(|f| (f.name.clone(), f.bytes.clone()))
        .collect();
    files.push((
        "pass.json".into(),
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/default/pass.json")).unwrap(),
    ));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for (name, w, h) in [("strip.png", 250, 82), ("strip@2x.png", 375, 123), ("strip@3x.png", 563, 185)] {
        files.push((name.into(), noise_png(w, h, &mut seed)));
    }
    Template::from_files("heavy".into(), files).unwrap()
}

/// An uncompressed (stored-deflate) RGB PNG of random pixels.
fn noise_png(width: u32, height: u32, seed: &mut u64) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    for _ in 0..height {
        raw.push(0);
        raw.extend((0..width * 3).map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        }));
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        png.extend((data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend(&data);
        png.extend(&chunk);
        png.extend(crc32(&chunk).to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Latency of an unchanged pass (served from the cache) and of a 304, over HTTP on one worker.
fn serve_benchmark(dir: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        let data = dir.join("data");
        let vars = [
            ("LOY_BIND", "127.0.0.1:0".to_owned()),
            ("LOY_HTTP_WORKERS", "1".to_owned()),
            ("LOY_DATA_DIR", data.display().to_string()),
            ("LOY_APPLE_DEV_DIR", dir.join("certs").display().to_string()),
            ("LOY_SQLITE_SYNCHRONOUS", "normal".to_owned()),
        ];
        let raw = RawSettings::load(None, vars.iter().map(|(k, v)| (k.to_string(), v.clone())), KEYS).unwrap();
        let settings = Settings::from_raw(&raw).unwrap();
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        // Enrolling takes an API key, made as `loy api-key create` does.
        let (api_key, secret) = loy::domain::ApiKey::generate("bench", loy::domain::Scope::Pos, Utc::now());
        app.state().store.insert_api_key(&api_key).await.unwrap();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let enrolled: serde_json::Value = client
            .post(format!("{base}/api/v1/enrollments"))
            .bearer_auth(&secret)
            .json(&serde_json::json!({"first_name": "Anna", "phone": "+79123456789", "consent": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let card_url = enrolled["card"]["card_url"].as_str().unwrap();
        let key = card_url.rsplit('/').next().unwrap();
        let first = client.get(format!("{base}/c/{key}/card.pkpass")).send().await.unwrap();
        let last_modified = first.headers()["last-modified"].to_str().unwrap().to_owned();
        let bytes = first.bytes().await.unwrap();
        let pass = read_pass_json(&bytes);
        let serial = pass["serialNumber"].as_str().unwrap().to_owned();
        let auth = format!("ApplePass {}", pass["authenticationToken"].as_str().unwrap());
        let url = format!("{base}/passkit/v1/passes/pass.dev.loy.loyalty/{serial}");
        let client = Arc::new(client);

        for (what, since) in [("unchanged pass (cache hit, 200)", None), ("not modified (304)", Some(last_modified))] {
            let mut latencies = Vec::with_capacity(REQUESTS);
            let started = Instant::now();
            for _ in 0..REQUESTS {
                let mut request = client.get(&url).header("authorization", &auth);
                if let Some(since) = &since {
                    request = request.header("if-modified-since", since);
                }
                let t = Instant::now();
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let _ = response.bytes().await.unwrap();
                latencies.push(t.elapsed());
                assert!(status == 200 || status == 304);
            }
            let elapsed = started.elapsed();
            latencies.sort();
            let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
            println!(
                "{what}: p50 {:.2} ms, p99 {:.2} ms, {:.0} requests/s from one sequential client",
                ms(pct(0.50)),
                ms(pct(0.99)),
                REQUESTS as f64 / elapsed.as_secs_f64()
            );
        }
        handle.stop(true).await;
    });
}

fn read_pass_json(bytes: &[u8]) -> serde_json::Value {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut text = String::new();
    archive.by_name("pass.json").unwrap().read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
