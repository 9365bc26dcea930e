//! Reading a customer CSV file: its encoding and separator, its columns by header, and every
//! line checked with the domain's own parsers, so a bad line is reported before anything is
//! written.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::domain::{
    CardNumber, CardStatus, Customer, Email, Locale, PersonName, Phone, PhoneRegion, Program, TierRule,
};

/// The longest value any field may hold (names have their own, shorter, limit).
pub const MAX_FIELD_CHARS: usize = 256;

/// The columns the import understands; any other column is listed as ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// The whole name, when the file has no separate first and last names.
    Name,
    FirstName,
    LastName,
    Phone,
    Email,
    Birthday,
    CardNumber,
    Balance,
    LifetimePoints,
    Tier,
    Status,
    RegisteredAt,
}

impl Column {
    /// The column a header names: English names as `loy export` writes them and the usual
    /// Russian ones of spreadsheets kept by hand.
    pub fn from_header(header: &str) -> Option<Self> {
        let h: String = header
            .trim()
            .trim_start_matches('\u{feff}')
            .to_lowercase()
            .chars()
            .map(|c| if c == ' ' || c == '-' { '_' } else { c })
            .collect();
        Some(match h.as_str() {
            "name" | "full_name" | "customer" | "фио" | "клиент" | "имя_и_фамилия" => Self::Name,
            "first_name" | "firstname" | "имя" => Self::FirstName,
            "last_name" | "lastname" | "surname" | "фамилия" => Self::LastName,
            "phone" | "phone_number" | "mobile" | "телефон" | "мобильный" | "номер_телефона" => {
                Self::Phone
            }
            "email" | "e_mail" | "mail" | "почта" | "эл._почта" | "электронная_почта" => {
                Self::Email
            }
            "birthday" | "birth_date" | "date_of_birth" | "дата_рождения" | "день_рождения" => {
                Self::Birthday
            }
            "card_number" | "card" | "номер_карты" | "карта" => Self::CardNumber,
            "balance" | "points" | "баланс" | "баллы" | "бонусы" => Self::Balance,
            "lifetime_points" | "lifetime_earned" | "накоплено_всего" => Self::LifetimePoints,
            "tier" | "level" | "уровень" | "статус_карты" => Self::Tier,
            "status" | "статус" => Self::Status,
            "registered_at" | "registration_date" | "created_at" | "дата_регистрации" => {
                Self::RegisteredAt
            }
            _ => return None,
        })
    }
}

/// How the file was read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileShape {
    /// `UTF-8` or `windows-1251`.
    pub encoding: &'static str,
    pub delimiter: char,
    /// The headers that name no known column (their values are ignored).
    pub ignored_columns: Vec<String>,
}

/// Why the file as a whole cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the file has no phone column (a header such as phone or Телефон)")]
    NoPhoneColumn,
    #[error("the file has no name column (name, first_name or Имя)")]
    NoNameColumn,
    #[error("the column {0} appears twice")]
    RepeatedColumn(String),
    #[error("the header line cannot be read: {0}")]
    BadHeader(String),
}

/// A line that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineError {
    /// The line's number in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// One valid line, ready to become a card.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub holder: Customer,
    pub card_number: Option<CardNumber>,
    pub balance: i64,
    pub lifetime: i64,
    pub tier: String,
    pub status: CardStatus,
    pub registered_at: Option<DateTime<Utc>>,
}

/// The file read: its valid rows and its bad lines.
#[derive(Debug)]
pub struct ParsedFile {
    pub shape: FileShape,
    pub rows: Vec<ImportRow>,
    pub errors: Vec<LineError>,
}

/// Text of the file: UTF-8 (a byte-order mark is dropped) when it is valid UTF-8, otherwise
/// Windows-1251, the encoding Russian Excel saves CSV in.
pub fn decode(bytes: &[u8]) -> (String, &'static str) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), "UTF-8"),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1251.decode(bytes);
            (text.into_owned(), "windows-1251")
        }
    }
}

/// `;` when the header line has more semicolons than commas (Excel in Russian locales), else `,`.
fn delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    if header.matches(';').count() > header.matches(',').count() { b';' } else { b',' }
}

/// Reads and checks a whole file against `program` (its tiers) and `region` (phones without a
/// country code). Two lines with the same phone or card number: the later one is a bad line.
pub fn parse_file(
    bytes: &[u8],
    program: &Program,
    region: PhoneRegion,
    now: DateTime<Utc>,
) -> Result<ParsedFile, FileError> {
    let (text, encoding) = decode(bytes);
    if text.trim().is_empty() {
        return Err(FileError::Empty);
    }
    let delimiter = delimiter(&text);
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).has_headers(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| FileError::BadHeader(e.to_string()))?.clone();
    let mut columns: HashMap<Column, usize> = HashMap::new();
    let mut ignored_columns = Vec::new();
    for (i, header) in headers.iter().enumerate() {
        match Column::from_header(header) {
            Some(column) => {
                if columns.insert(column, i).is_some() {
                    return Err(FileError::RepeatedColumn(header.trim().to_owned()));
                }
            }
            None if header.trim().is_empty() => {}
            None => ignored_columns.push(header.trim().to_owned()),
        }
    }
    if !columns.contains_key(&Column::Phone) {
        return Err(FileError::NoPhoneColumn);
    }
    if !columns.contains_key(&Column::Name) && !columns.contains_key(&Column::FirstName) {
        return Err(FileError::NoNameColumn);
    }
    let shape = FileShape { encoding, delimiter: char::from(delimiter), ignored_columns };
    let checker = LineChecker { columns, program, region, now };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut phones: HashMap<String, u64> = HashMap::new();
    let mut numbers: HashMap<String, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                errors.push(LineError { line, reason: format!("the line cannot be read as CSV: {e}") });
                continue;
            }
        }
        let line = record.position().map_or(line, csv::Position::line);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        match checker.row(line, &record) {
            Err(reason) => errors.push(LineError { line, reason }),
            Ok(row) => {
                if let Some(first) = phones.get(row.holder.phone.as_str()) {
                    errors.push(LineError { line, reason: format!("the phone number repeats line {first}") });
                    continue;
                }
                if let Some(first) = row.card_number.as_ref().and_then(|n| numbers.get(n.as_str())) {
                    errors.push(LineError { line, reason: format!("the card number repeats line {first}") });
                    continue;
                }
                phones.insert(row.holder.phone.as_str().to_owned(), line);
                if let Some(n) = &row.card_number {
                    numbers.insert(n.as_str().to_owned(), line);
                }
                rows.push(row);
            }
        }
    }
    Ok(ParsedFile { shape, rows, errors })
}

struct LineChecker<'a> {
    columns: HashMap<Column, usize>,
    program: &'a Program,
    region: PhoneRegion,
    now: DateTime<Utc>,
}

impl LineChecker<'_> {
    /// The trimmed value of a column, `None` when the column is absent or the value empty.
    fn get<'r>(&self, record: &'r csv::StringRecord, column: Column) -> Result<Option<&'r str>, String> {
        let Some(value) = self.columns.get(&column).and_then(|&i| record.get(i)) else {
            return Ok(None);
        };
        let value = value.trim();
        if value.chars().count() > MAX_FIELD_CHARS {
            return Err(format!("the {} is longer than {MAX_FIELD_CHARS} characters", column_label(column)));
        }
        Ok((!value.is_empty()).then_some(value))
    }

    fn row(&self, line: u64, record: &csv::StringRecord) -> Result<ImportRow, String> {
        let (first_name, last_name) = self.names(record)?;
        let phone_text = self.get(record, Column::Phone)?.ok_or("the phone number is missing")?;
        let phone = Phone::parse(phone_text, self.region).map_err(|e| format!("the phone number: {e}"))?;
        let email = self
            .get(record, Column::Email)?
            .map(Email::parse)
            .transpose()
            .map_err(|_| "the e-mail address is not valid".to_owned())?;
        let birthday = self
            .get(record, Column::Birthday)?
            .map(|v| parse_date(v).ok_or(format!("the birthday {v:?} is not a date (use 1990-05-31 or 31.05.1990)")))
            .transpose()?;
        if let Some(b) = birthday {
            let today = self.now.date_naive();
            if b > today || b < NaiveDate::from_ymd_opt(1900, 1, 1).expect("a valid date") {
                return Err(format!("the birthday {b} is not possible"));
            }
        }
        let card_number = self
            .get(record, Column::CardNumber)?
            .map(CardNumber::parse)
            .transpose()
            .map_err(|e| format!("the card number: {e}"))?;
        let balance = self.points(record, Column::Balance)?.unwrap_or(0);
        let lifetime = self.points(record, Column::LifetimePoints)?;
        let tier = match self.get(record, Column::Tier)? {
            Some(t) => Some(find_tier(&self.program.rules.tiers, t).ok_or(format!("the tier {t:?} does not exist"))?),
            None => None,
        };
        // Tiers follow lifetime points: a tier given without them starts the card at its threshold.
        let lifetime = lifetime.unwrap_or(balance).max(tier.map_or(0, |t| t.threshold));
        let tier = tier.unwrap_or_else(|| self.program.rules.tier_for(lifetime)).id.clone();
        let status = match self.get(record, Column::Status)?.map(str::to_lowercase).as_deref() {
            None | Some("active") | Some("активна") | Some("активен") => CardStatus::Active,
            Some("blocked") | Some("заблокирована") | Some("заблокирован") => {
                CardStatus::Blocked
            }
            Some("deleted") => return Err("the customer was deleted: there is nothing to import".into()),
            Some(other) => return Err(format!("the status {other:?} is neither active nor blocked")),
        };
        let registered_at = self
            .get(record, Column::RegisteredAt)?
            .map(|v| parse_time(v).ok_or(format!("the registration date {v:?} is not a date")))
            .transpose()?;
        if registered_at.is_some_and(|t| t > self.now) {
            return Err("the registration date is in the future".into());
        }
        let holder = Customer {
            first_name,
            last_name,
            phone,
            email,
            birthday,
            locale: Locale::default(),
            consent_at: crate::domain::card::stored_precision(registered_at.unwrap_or(self.now)),
        };
        Ok(ImportRow { line, holder, card_number, balance, lifetime, tier, status, registered_at })
    }

    fn names(&self, record: &csv::StringRecord) -> Result<(PersonName, Option<PersonName>), String> {
        let first = match self.get(record, Column::FirstName)? {
            Some(f) => Some(f),
            None => self.get(record, Column::Name)?,
        };
        let first = first.ok_or("the name is missing")?;
        let first = PersonName::parse(first).map_err(|e| e.to_string())?;
        let last = self
            .get(record, Column::LastName)?
            .map(PersonName::parse)
            .transpose()
            .map_err(|e| format!("the last name: {e}"))?;
        Ok((first, last))
    }

    fn points(&self, record: &csv::StringRecord, column: Column) -> Result<Option<i64>, String> {
        let Some(v) = self.get(record, column)? else { return Ok(None) };
        // Spreadsheets group thousands with spaces (often non-breaking ones).
        let digits: String = v.chars().filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}')).collect();
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("the {} {v:?} is not a whole number of points", column_label(column)))?;
        if n < 0 {
            return Err(format!("the {} is negative", column_label(column)));
        }
        if n > 1_000_000_000 {
            return Err(format!("the {} is implausibly large", column_label(column)));
        }
        Ok(Some(n))
    }
}

fn column_label(column: Column) -> &'static str {
    match column {
        Column::Name | Column::FirstName => "name",
        Column::LastName => "last name",
        Column::Phone => "phone number",
        Column::Email => "e-mail address",
        Column::Birthday => "birthday",
        Column::CardNumber => "card number",
        Column::Balance => "balance",
        Column::LifetimePoints => "lifetime points",
        Column::Tier => "tier",
        Column::Status => "status",
        Column::RegisteredAt => "registration date",
    }
}

fn find_tier<'t>(tiers: &'t [TierRule], name: &str) -> Option<&'t TierRule> {
    let name = name.to_lowercase();
    tiers.iter().find(|t| t.id == name || t.name_en.to_lowercase() == name || t.name_ru.to_lowercase() == name)
}

/// `1990-05-31`, `31.05.1990` or `31/05/1990`.
pub fn parse_date(v: &str) -> Option<NaiveDate> {
    ["%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"].iter().find_map(|f| NaiveDate::parse_from_str(v, f).ok())
}

/// A date (midnight UTC) or a time: RFC 3339, `2024-01-31 10:00:00` or `31.01.2024 10:00`.
pub fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    let time = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok());
    time.or_else(|| parse_date(v).and_then(|d| d.and_hms_opt(0, 0, 0))).map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn program() -> Program {
        Program::new("default", "Coffee", Currency::parse("RUB").unwrap(), Utc::now())
    }

    #[test]
    fn windows_1251_with_semicolons_and_russian_headers_is_read() {
        let text = "Имя;Фамилия;Телефон;Баланс\nАнна;Иванова;+79123456789;1 500\n";
        let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(text);
        let parsed = parse_file(&bytes, &program(), PhoneRegion::RU, Utc::now()).unwrap();
        assert_eq!(parsed.shape.encoding, "windows-1251");
        assert_eq!(parsed.shape.delimiter, ';');
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.rows[0].holder.first_name.as_str(), "Анна");
        assert_eq!(parsed.rows[0].balance, 1500);
    }

    #[test]
    fn a_utf8_file_with_a_byte_order_mark_keeps_its_first_header() {
        let parsed =
            parse_file(b"\xEF\xBB\xBFphone,name\n89123456789,Ann\n", &program(), PhoneRegion::RU, Utc::now()).unwrap();
        assert_eq!(parsed.shape.encoding, "UTF-8");
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].holder.phone.as_str(), "+79123456789");
    }

    #[test]
    fn a_file_without_a_phone_column_is_refused() {
        let err = parse_file(b"name,email\nAnn,a@b.ru\n", &program(), PhoneRegion::RU, Utc::now()).unwrap_err();
        assert_eq!(err, FileError::NoPhoneColumn);
    }

    #[test]
    fn dates_are_read_in_iso_and_russian_forms() {
        assert_eq!(parse_date("31.05.1990"), NaiveDate::from_ymd_opt(1990, 5, 31));
        assert_eq!(parse_date("1990-05-31"), NaiveDate::from_ymd_opt(1990, 5, 31));
        assert_eq!(parse_date("31-05-1990"), None);
    }
}
