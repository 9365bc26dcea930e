//! `loy program …`: the install's loyalty programs from the command line, against the configured
//! store (a running server's nodes see a change within `LOY_PROGRAM_CACHE_MS`). Creating and
//! archiving go through the same code as the console, audit log included.

use std::process::ExitCode;

use clap::Subcommand;

use crate::admin::audit::Actor;
use crate::admin::programs::{self, ArchiveOutcome, CreateError, NewProgram};
use crate::admin::programs_rules::percent;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::Program;
use crate::domain::amount::format_amount;
use crate::startup::open_for_tool;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum ProgramCommand {
    /// List every program: id, name, currency, status.
    List,
    /// Create a program with the default rules and card design.
    Create {
        /// The program's id: 1–40 lowercase letters, digits and dashes (its address is /p/SLUG).
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "RUB")]
        currency: String,
        /// The registration form's language when the visitor's browser prefers neither
        /// (without it: LOY_DEFAULT_LOCALE).
        #[arg(long, default_value = "", value_parser = ["", "ru", "en"], hide_default_value = true)]
        locale: String,
        /// How customers collect: `points` (cashback by tier) or `stamps` (N stamps earn a reward).
        #[arg(long, default_value = "points", value_parser = ["points", "stamps"])]
        mechanic: String,
        /// Stamps programs: the stamps that earn a reward (2–30).
        #[arg(long, default_value = "10")]
        stamps_per_reward: String,
        /// Stamps programs: what the reward is ("Free coffee"); set each language in the console.
        #[arg(long, default_value = "")]
        reward: String,
    },
    /// Show a program's settings and rules.
    Show { slug: String },
    /// Close a program's registration; its cards keep working.
    Archive { slug: String },
    /// Open an archived program's registration again.
    Unarchive { slug: String },
}

fn actor(what: &str) -> Actor {
    Actor { staff_id: None, email: format!("loy program {what}"), address: "cli".into() }
}

pub async fn program(settings: &Settings, command: ProgramCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = open_for_tool(settings).await?;
    let store: &dyn Store = store.as_ref();
    match command {
        ProgramCommand::List => {
            println!("{:<24} {:<8} {:<9} NAME", "ID", "CURRENCY", "STATUS");
            for p in store.programs().await? {
                println!("{:<24} {:<8} {:<9} {}", p.id, p.currency.code, status(&p), p.name);
            }
        }
        ProgramCommand::Create { slug, name, currency, locale, mechanic, stamps_per_reward, reward } => {
            let fields = NewProgram { slug, name, currency, locale, mechanic, stamps_per_reward, reward };
            match programs::create(store, &SystemClock, &actor("create"), &fields).await {
                Ok(p) => {
                    println!("Created program {} ({}), currency {}", p.id, p.name, p.currency.code);
                    if let Some(stamps) = p.rules.stamp_rules() {
                        println!(
                            "Stamp card: {} stamps earn a reward: {}",
                            stamps.stamps_per_reward,
                            stamps.reward.get(crate::domain::Locale::En)
                        );
                    }
                    println!("Registration form: {}{}", settings.public_url, programs::registration_path(&p.id));
                }
                Err(CreateError::Invalid(problems)) => {
                    for (field, key) in problems {
                        eprintln!("loy: {field}: {}", explain(key));
                    }
                    return Ok(ExitCode::from(2));
                }
                Err(CreateError::Taken) => {
                    eprintln!("loy: a program with the id {} exists", fields.slug.trim());
                    return Ok(ExitCode::FAILURE);
                }
                Err(CreateError::Store(e)) => return Err(e.into()),
            }
        }
        ProgramCommand::Show { slug } => {
            let Some(p) = store.program(&slug).await? else { return Ok(missing(&slug)) };
            print!("{}", describe(&p, &settings.public_url));
        }
        ProgramCommand::Archive { slug } => return archive(store, &slug, true).await,
        ProgramCommand::Unarchive { slug } => return archive(store, &slug, false).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn archive(store: &dyn Store, slug: &str, archived: bool) -> anyhow::Result<ExitCode> {
    let Some(p) = store.program(slug).await? else { return Ok(missing(slug)) };
    let what = if archived { "archive" } else { "unarchive" };
    match programs::set_archived(store, &SystemClock, &actor(what), &p, archived).await? {
        ArchiveOutcome::Changed if archived => {
            println!("Archived {slug}: registration is closed, its cards keep working")
        }
        ArchiveOutcome::Changed => println!("Unarchived {slug}: registration is open"),
        ArchiveOutcome::Unchanged => println!("{slug} already is {}", status(&p)),
        ArchiveOutcome::Default => {
            eprintln!("loy: the default program cannot be archived");
            return Ok(ExitCode::FAILURE);
        }
        ArchiveOutcome::Conflict => {
            eprintln!("loy: {slug} was changed at the same time; run the command again");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn missing(slug: &str) -> ExitCode {
    eprintln!("loy: there is no program {slug} (see `loy program list`)");
    ExitCode::FAILURE
}

fn status(p: &Program) -> &'static str {
    if p.is_archived() { "archived" } else { "active" }
}

/// What a refused field means, in English (the console shows the catalog's sentence).
fn explain(key: &str) -> &'static str {
    match key {
        "slug_invalid" => "use 1–40 lowercase letters, digits and dashes, starting with a letter or digit",
        "name_invalid" => "give a name of 1–100 characters",
        "currency_invalid" => "give a three-letter currency code such as RUB, EUR or USD",
        "locale_invalid" => "use ru or en",
        "mechanic_invalid" => "use points or stamps",
        "stamps_per_reward_range" => "a reward needs from 2 to 30 stamps",
        "reward_empty" => "say what the reward is",
        "reward_too_long" => "the reward's name must be at most 60 characters",
        _ => "invalid",
    }
}

/// A program's settings and rules as `loy program show` prints them.
pub fn describe(p: &Program, public_url: &str) -> String {
    use std::fmt::Write;
    let r = &p.rules;
    let mut out = String::new();
    let _ = writeln!(out, "id                  {}", p.id);
    let _ = writeln!(out, "name                {}", p.name);
    let _ = writeln!(out, "currency            {}", p.currency.code);
    let _ = writeln!(out, "default language    {}", p.locale.map_or("LOY_DEFAULT_LOCALE", |l| l.code()));
    let _ = writeln!(out, "time zone           {}", p.time_zone);
    let _ = writeln!(out, "mechanic            {}", r.mechanic.as_str());
    let archived = p.archived_at.map(|t| format!("archived since {}", t.format("%Y-%m-%d %H:%M UTC")));
    let _ = writeln!(out, "status              {}", archived.unwrap_or_else(|| "active".into()));
    let _ = writeln!(out, "registration        {public_url}{}", programs::registration_path(&p.id));
    let _ = writeln!(out, "version             {}", p.version);
    let _ = writeln!(out, "design revision     {}", p.design.revision);
    if let Some(s) = r.stamp_rules() {
        let _ = writeln!(out, "\nStamps");
        let _ = writeln!(out, "  stamps per reward         {}", s.stamps_per_reward);
        let per_purchase = match s.amount_per_stamp {
            Some(a) => format!("1 per {} {}", format_amount(a, p.currency.minor_digits), p.currency.code),
            None => format!("{} per purchase", s.stamps_per_purchase),
        };
        let _ = writeln!(out, "  stamps                    {per_purchase}");
        let _ = writeln!(out, "  reward                    {} / {}", s.reward.ru, s.reward.en);
        let expiry = s.reward_expiry_days.map(|d| format!("after {d} days")).unwrap_or_else(|| "never".into());
        let _ = writeln!(out, "  rewards expire            {expiry}");
        let _ = writeln!(out, "  welcome stamps            {}", s.welcome_stamps);
        let limit = s.daily_limit.map(|n| format!("{n} stamps in 24 hours")).unwrap_or_else(|| "none".into());
        let _ = writeln!(out, "  daily limit               {limit}");
        return out;
    }
    let _ = writeln!(out, "\nTiers");
    let _ = writeln!(out, "  {:<16} {:>10} {:>9}  NAMES (ru / en)", "ID", "FROM", "CASHBACK");
    for t in &r.tiers {
        let cashback = format!("{} %", percent(t.cashback_bp));
        let _ = writeln!(out, "  {:<16} {:>10} {:>9}  {} / {}", t.id, t.threshold, cashback, t.name_ru, t.name_en);
    }
    let _ = writeln!(out, "\nRules");
    let when = if r.welcome_at_first_purchase { "at the first purchase" } else { "at registration" };
    let _ = writeln!(out, "  welcome bonus             {} points, {when}", r.welcome_bonus);
    let _ = writeln!(out, "  minimum redemption        {} points", r.min_redemption);
    let _ = writeln!(out, "  max share paid in points  {} %", r.max_redeem_percent);
    let expiry = r.expiry_days.map(|d| format!("after {d} days")).unwrap_or_else(|| "never".into());
    let _ = writeln!(out, "  points expire             {expiry}");
    let _ = writeln!(out, "  referral bonus            {} points each", r.referral_bonus);
    let minimum = format_amount(r.referral_min_purchase, p.currency.minor_digits);
    let _ = writeln!(out, "  referral minimum purchase {minimum} {}", p.currency.code);
    out
}
