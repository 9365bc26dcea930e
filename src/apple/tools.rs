//! The operator's Apple tools behind `loy certs dev`, `loy certs check` and `loy pass lint`.
//! Results go to standard output as plain sentences; the exit code says whether all is well.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::certs::{self, Inspection};
use super::dev_certs::{self, DevOutcome};
use super::lint;
use super::rules::Severity;
use crate::config::Settings;
use crate::config::apple::SignerFiles;

/// `loy certs dev [--force]`: generates (or keeps) the development certificates.
pub fn certs_dev(settings: &Settings, force: bool, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let apple = &settings.apple;
    let dir = &apple.dev_dir;
    let outcome = dev_certs::ensure(dir, &apple.effective_pass_type_id(), &apple.effective_team_id(), force)?;
    let what = match outcome {
        DevOutcome::Reused => "are already there and usable; nothing was changed (--force makes new ones)",
        DevOutcome::NewSigner => "now have a new pass signer, issued by the existing development CA",
        DevOutcome::NewCa => "were generated: a new development CA, WWDR-like intermediate and pass signer",
    };
    writeln!(out, "Development certificates in {} {what}.", dir.display())?;
    writeln!(
        out,
        "Signer: pass type {}, team {}. Trust {} to open these passes on a test device; real iPhones never will.",
        apple.effective_pass_type_id(),
        apple.effective_team_id(),
        dir.join(dev_certs::CA_FILE).display()
    )?;
    if apple.signer.is_some() {
        writeln!(out, "Note: LOY_APPLE_CERTIFICATE is set, so loy signs with that certificate, not with these.")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `loy certs check`: what is configured and everything wrong with it.
pub fn certs_check(settings: &Settings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let apple = &settings.apple;
    let inspection = match &apple.signer {
        Some(files) => {
            writeln!(out, "Apple Pass Type ID certificate: {}", files.certificate.display())?;
            certs::inspect_configured(apple, files)
        }
        None => {
            let dir = &apple.dev_dir;
            writeln!(
                out,
                "No Apple certificate is configured (LOY_APPLE_CERTIFICATE): passes are signed with development \
                 certificates from {}.\nSuch passes open only where {} is trusted, not on real iPhones. To issue \
                 real passes set LOY_APPLE_CERTIFICATE, LOY_APPLE_CERTIFICATE_PASSWORD, LOY_APPLE_WWDR, \
                 LOY_APPLE_PASS_TYPE_ID and LOY_APPLE_TEAM_ID (see .env.example).",
                dir.display(),
                dir.join(dev_certs::CA_FILE).display()
            )?;
            if !dir.join(dev_certs::SIGNER_FILE).exists() {
                writeln!(out, "  ok    not generated yet: `loy serve` or `loy certs dev` will create them")?;
                return Ok(ExitCode::SUCCESS);
            }
            let files = SignerFiles {
                certificate: dir.join(dev_certs::SIGNER_FILE),
                password: None,
                key: Some(dir.join(dev_certs::SIGNER_KEY_FILE)),
                wwdr: Some(dir.join(dev_certs::WWDR_FILE)),
            };
            let mut dev = apple.clone();
            dev.pass_type_id = Some(apple.effective_pass_type_id());
            dev.team_id = Some(apple.effective_team_id());
            certs::inspect_configured(&dev, &files)
        }
    };
    print_findings(&inspection, out)?;
    let problems = inspection.errors().len();
    if problems == 0 {
        writeln!(out, "All checks passed.")?;
        Ok(ExitCode::SUCCESS)
    } else {
        let tail = if apple.signer.is_some() {
            "loy serve refuses to start until it is fixed"
        } else {
            "loy serve will replace the development certificates"
        };
        writeln!(out, "{problems} problem{}: {tail}.", if problems == 1 { "" } else { "s" })?;
        Ok(ExitCode::FAILURE)
    }
}

fn print_findings(inspection: &Inspection, out: &mut dyn Write) -> std::io::Result<()> {
    for finding in &inspection.findings {
        writeln!(out, "  {}  {}", if finding.ok { "ok  " } else { "FAIL" }, finding.text)?;
    }
    Ok(())
}

/// `loy pass lint FILE [--ca CA]`: exit 0 only for a valid pass, 1 for an invalid one, 2 when
/// it could not be checked at all.
pub fn pass_lint(settings: &Settings, file: &Path, ca: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let trust = match ca {
        Some(path) => lint::read_ca(path).map(|cert| (cert, format!("the CA {}", path.display()))),
        None => lint::default_trust(&settings.apple),
    };
    let (ca, described) = match trust {
        Ok(found) => found,
        Err(why) => {
            writeln!(out, "cannot check the signature: {why}")?;
            return Ok(ExitCode::from(2));
        }
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            writeln!(out, "cannot read {}: {e}", file.display())?;
            return Ok(ExitCode::from(2));
        }
    };
    let report = lint::lint(&bytes, &ca);
    writeln!(out, "{}: checked against {described}", file.display())?;
    for problem in &report.problems {
        let level = if problem.severity == Severity::Error { "error" } else { "warning" };
        writeln!(out, "{level}: {}", problem.message)?;
    }
    let count = |s| report.problems.iter().filter(|p| p.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    if report.is_valid() {
        writeln!(out, "{} is a valid pass ({warnings} warning{}).", file.display(), plural(warnings))?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(
            out,
            "{} is not a valid pass: {errors} error{}, {warnings} warning{}.",
            file.display(),
            plural(errors),
            plural(warnings)
        )?;
        Ok(ExitCode::FAILURE)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
