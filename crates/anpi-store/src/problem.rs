//! What the store refuses, as codes: the reason of a [`StoreError::Invalid`] or
//! [`StoreError::Conflict`](crate::StoreError::Conflict). The store holds no UI text; anpi-web
//! turns a `Problem` into the page's language (`anpi_web::i18n::problem`). `Display` is English,
//! for logs, tests and the command line.
//!
//! [`StoreError::Invalid`]: crate::StoreError::Invalid

use anpi_core::password::PasswordProblem;
use std::fmt;

/// One problem a person can fix, with the data its message needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An email address that is not one.
    InvalidEmail,
    /// An account without a name.
    NameMissing,
    /// Another account of the tenant has this email address.
    EmailRegistered,
    /// A password that `anpi_core::password::check` refuses.
    Password(PasswordProblem),
    /// The current password, entered to change it, is wrong.
    WrongCurrentPassword,
    /// A password reset link that is unknown, used or expired.
    LinkInvalid,
    /// A TOTP code that does not match the secret being enrolled.
    CodeMismatch,
    /// A passkey ceremony was refused (the reason is logged, never shown).
    PasskeyNotVerified,
    /// The account has this many passkeys, the most it may have.
    TooManyPasskeys(usize),
    /// A site without a name.
    SiteNameMissing,
    /// A site of that name exists.
    SiteExists,
    /// A department without a name.
    DepartmentNameMissing,
    /// A contact group without a name.
    GroupNameMissing,
    /// A person's site that is not in the directory (the name as given).
    UnknownSite(String),
    /// Another person has this employee number.
    EmployeeNoInUse(String),
    /// An incident without a title.
    TitleMissing,
    /// An incident without a target.
    NoTarget,
    /// An incident whose target matches nobody (within the sender's reach).
    NobodyMatches,
    /// The incident is closed (no more resends).
    IncidentClosed,
    /// A label rank outside 0–1000.
    LabelRank,
    /// A label id that is not one of the tenant's.
    UnknownLabel,
    /// Another label of the tenant has this name.
    LabelExists(String),
    /// A label that is in use cannot be deleted: what uses it.
    LabelInUse {
        /// The label's name.
        name: String,
        /// Incidents that carry it.
        incidents: i64,
        /// Rules that give it to their incidents.
        rules: i64,
        /// It is the label of exports that belong to no incident.
        default: bool,
    },
    /// A label was put to use between the check and the delete.
    LabelTaken,
    /// An audit log retention outside 30–3650 days.
    RetentionDays,
    /// A lockout threshold outside 1–100.
    LockoutThreshold,
    /// An idle timeout outside 5–1440 minutes.
    IdleTimeout,
    /// An absolute session timeout outside 60–10080 minutes, or below the idle timeout.
    AbsoluteTimeout,
    /// Admin client certificates cannot be required before a CA certificate is uploaded.
    NeedClientCa,
    /// The CA certificate cannot be removed while admins must present certificates.
    ClientCertStillRequired,
    /// A time zone that is not an IANA name (the name as given).
    UnknownTimeZone(String),
    /// A tenant code that is not 2–32 of a-z, 0-9 and `-`.
    TenantCode,
    /// A tenant without a name.
    TenantNameMissing,
    /// Another tenant has this code.
    TenantCodeTaken(String),
    /// A DKIM domain or selector that is not a DNS name.
    DkimName,
    /// A DKIM algorithm other than rsa and ed25519.
    DkimAlgorithm,
    /// A message from an `anpi_core` validator (an allowlist entry, a CA certificate, a label
    /// name), shown as it is: those texts are in both languages.
    Other(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::InvalidEmail => f.write_str("invalid email"),
            Problem::NameMissing => f.write_str("name is required"),
            Problem::EmailRegistered => f.write_str("email already registered"),
            Problem::Password(p) => f.write_str(&p.message(anpi_core::Lang::En)),
            Problem::WrongCurrentPassword => f.write_str("current password is wrong"),
            Problem::LinkInvalid => f.write_str("this link is invalid or expired"),
            Problem::CodeMismatch => f.write_str("the code does not match"),
            Problem::PasskeyNotVerified => f.write_str("the passkey could not be verified"),
            Problem::TooManyPasskeys(n) => write!(f, "at most {n} passkeys"),
            Problem::SiteNameMissing => f.write_str("site name is required"),
            Problem::SiteExists => f.write_str("site exists"),
            Problem::DepartmentNameMissing => f.write_str("department name is required"),
            Problem::GroupNameMissing => f.write_str("group name is required"),
            Problem::UnknownSite(name) => write!(f, "unknown site: {name}"),
            Problem::EmployeeNoInUse(no) => write!(f, "employee number {no} in use"),
            Problem::TitleMissing => f.write_str("title is required"),
            Problem::NoTarget => f.write_str("choose a target"),
            Problem::NobodyMatches => f.write_str("nobody matches the target"),
            Problem::IncidentClosed => f.write_str("incident is closed"),
            Problem::LabelRank => f.write_str("rank: 0–1000"),
            Problem::UnknownLabel => f.write_str("unknown label"),
            Problem::LabelExists(name) => write!(f, "a label named {name} exists"),
            Problem::LabelInUse { name, incidents, rules, default } => {
                write!(f, "the label {name} is in use: {incidents} incidents, {rules} rules{}", if *default { ", default for exports" } else { "" })
            }
            Problem::LabelTaken => f.write_str("the label is in use"),
            Problem::RetentionDays => f.write_str("retention: 30–3650 days"),
            Problem::LockoutThreshold => f.write_str("lockout threshold: 1–100"),
            Problem::IdleTimeout => f.write_str("idle timeout: 5–1440 minutes"),
            Problem::AbsoluteTimeout => f.write_str("absolute timeout: 60–10080 minutes, not below the idle timeout"),
            Problem::NeedClientCa => f.write_str("upload a CA certificate first"),
            Problem::ClientCertStillRequired => f.write_str("turn off the admin certificate requirement first"),
            Problem::UnknownTimeZone(zone) => write!(f, "unknown time zone {zone}; use an IANA name such as Asia/Tokyo"),
            Problem::TenantCode => f.write_str("tenant code: 2–32 of a-z, 0-9, -"),
            Problem::TenantNameMissing => f.write_str("tenant name is required"),
            Problem::TenantCodeTaken(code) => write!(f, "tenant code {code} is taken"),
            Problem::DkimName => f.write_str("a DKIM domain and selector are DNS names (letters, digits, hyphens, dots)"),
            Problem::DkimAlgorithm => f.write_str("a DKIM algorithm is rsa or ed25519"),
            Problem::Other(text) => f.write_str(text),
        }
    }
}
