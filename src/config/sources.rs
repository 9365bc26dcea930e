//! Where settings come from: built-in defaults < an optional TOML file < `LOY_*` variables.
//!
//! The file uses the variable names without the `LOY_` prefix, in lower case
//! (`LOY_PUBLIC_URL` ↔ `public_url = "…"`), so one name documents both.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;

/// One value as given, and where it was given, so errors can name the place.
#[derive(Debug, Clone)]
pub struct RawValue {
    pub value: String,
    pub origin: String,
}

/// The settings as strings, after layering, before parsing.
#[derive(Debug, Default)]
pub struct RawSettings {
    values: BTreeMap<String, RawValue>,
    /// `LOY_*` variables that name no setting: likely typos, reported at start-up.
    pub unknown_env: Vec<String>,
}

/// Variables that start with `LOY_` but are not settings.
const NOT_SETTINGS: &[&str] = &["config"];
const NOT_SETTINGS_PREFIXES: &[&str] = &["test_"];

impl RawSettings {
    /// Layers the file (if any) and then the environment over nothing; defaults are applied by
    /// the typed parser. `known` lists every setting name (lower case, no prefix).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        known: &[&str],
    ) -> Result<Self, ConfigError> {
        let mut raw = RawSettings::default();
        if let Some(path) = file {
            raw.merge_file(path, known)?;
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("LOY_") else { continue };
            let key = key.to_ascii_lowercase();
            if NOT_SETTINGS.contains(&key.as_str()) || NOT_SETTINGS_PREFIXES.iter().any(|p| key.starts_with(p)) {
                continue;
            }
            if !known.contains(&key.as_str()) {
                raw.unknown_env.push(name);
                continue;
            }
            raw.values.insert(key, RawValue { value, origin: name });
        }
        Ok(raw)
    }

    fn merge_file(&mut self, path: &Path, known: &[&str]) -> Result<(), ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{shown}: cannot read the settings file ({e})")))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError(format!("{shown}: not valid TOML: {}", e.message())))?;
        for (key, value) in table {
            if !known.contains(&key.as_str()) {
                return Err(ConfigError(format!("{shown}: `{key}` is not a setting (see .env.example for the list)")));
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError(format!(
                        "{shown}: `{key}` must be a string, number or boolean, not a {}",
                        other.type_str()
                    )));
                }
            };
            self.values.insert(key.clone(), RawValue { value, origin: format!("{shown} ({key})") });
        }
        Ok(())
    }

    /// The value of `key` if it was given and is not blank.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.values.get(key).filter(|v| !v.value.trim().is_empty())
    }

    /// The origin label for messages about `key`: where it was given, or its variable name.
    pub fn origin(&self, key: &str) -> String {
        self.values.get(key).map(|v| v.origin.clone()).unwrap_or_else(|| format!("LOY_{}", key.to_ascii_uppercase()))
    }

    /// Parses `key` with `parse`, or returns `default` when it was not given.
    pub fn parse_or<T>(
        &self,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => parse(raw.value.trim()).map_err(|why| ConfigError(format!("{}: {why}", raw.origin))),
        }
    }

    /// Parses `key` with `parse` when given.
    pub fn parse_opt<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => parse(raw.value.trim()).map(Some).map_err(|why| ConfigError(format!("{}: {why}", raw.origin))),
        }
    }
}

/// Parsers for the value shapes settings use.
pub mod parse {
    pub fn string(s: &str) -> Result<String, String> {
        Ok(s.to_owned())
    }

    pub fn number<T>(min: T, max: T) -> impl FnOnce(&str) -> Result<T, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        move |s| {
            let n: T = s.parse().map_err(|_| format!("`{s}` is not a whole number"))?;
            if n < min || n > max {
                return Err(format!("{n} is out of range ({min} to {max})"));
            }
            Ok(n)
        }
    }
}
