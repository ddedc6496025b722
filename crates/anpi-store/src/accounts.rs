//! Console accounts, operator accounts, sessions and password resets.

use crate::audit::AuditEvent;
use crate::crypto::{hash_password, random_token, token_hash, verify_password, Lane};
use crate::{Problem, Result, Store, StoreError, TenantScope};
use anpi_core::{password, Millis, Role};

#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// Locked after too many failed sign-ins; an admin unlocks.
    pub locked: bool,
    /// Has a second factor.
    pub mfa: bool,
    /// For distributors: whom they may see and message; `None` = everyone.
    pub reach: Option<anpi_core::target::Target>,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: i64,
    email: String,
    name: String,
    role: String,
    disabled: i64,
    locked: i64,
    mfa: i64,
    reach_departments: String,
    reach_groups: String,
}

const ACCOUNT_COLUMNS: &str =
    "a.id, a.email, a.name, a.role, a.disabled, a.locked, CASE WHEN a.totp_secret <> '' OR EXISTS (SELECT 1 FROM passkeys p WHERE p.account_id = a.id) THEN 1 ELSE 0 END AS mfa, a.reach_departments, a.reach_groups";

fn ids(s: &str) -> Vec<i64> {
    s.split_whitespace().filter_map(|x| x.parse().ok()).collect()
}

impl AccountRow {
    fn into_account(self) -> Account {
        let role = Role::parse(&self.role).unwrap_or(Role::Member);
        let (departments, groups) = (ids(&self.reach_departments), ids(&self.reach_groups));
        let reach = (role == Role::Distributor && !(departments.is_empty() && groups.is_empty())).then(|| anpi_core::target::Target {
            departments,
            groups,
            ..Default::default()
        });
        Account { reach, id: self.id, email: self.email, name: self.name, role, disabled: self.disabled != 0, locked: self.locked != 0, mfa: self.mfa != 0 }
    }
}

/// How far a session has got: signed in, or half-way through sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStage {
    Full,
    /// Password accepted; the second factor is pending.
    Mfa,
    /// MFA is required but not set up: only enrolment is allowed.
    Enrol,
}

impl SessionStage {
    pub fn code(self) -> &'static str {
        match self {
            SessionStage::Full => "full",
            SessionStage::Mfa => "mfa",
            SessionStage::Enrol => "enrol",
        }
    }
    fn parse(s: &str) -> SessionStage {
        match s {
            "full" => SessionStage::Full,
            "enrol" => SessionStage::Enrol,
            _ => SessionStage::Mfa,
        }
    }
}

/// The public name of a session (see [`SessionRow::id`]).
pub fn session_id(token: &str) -> String {
    token_hash(token).chars().take(16).collect()
}

/// Where a session was started from, for the session list.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

impl ClientInfo {
    /// The detail of a sign-in step for the sign-in history: how, and from which browser.
    pub fn sign_in_detail(&self, method: &str) -> String {
        let ua: String = self.user_agent.chars().take(200).collect();
        if ua.is_empty() {
            method.to_string()
        } else {
            format!("{method}; {ua}")
        }
    }
}

/// One of an account's sessions, for "your sessions".
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// A prefix of the stored token hash: names the session without revealing the token.
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: String,
    pub user_agent: String,
}

/// Who a session belongs to.
#[derive(Debug, Clone)]
pub enum Principal {
    /// `time_zone`: the tenant's IANA zone, for showing times.
    Account {
        scope: TenantScope,
        account: Account,
        tenant_code: String,
        time_zone: String,
    },
    Operator {
        id: i64,
        email: String,
    },
}

/// An authenticated session.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub principal: Principal,
    pub csrf: String,
    pub stage: SessionStage,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_ms: i64,
    pub absolute_ms: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy { idle_ms: 30 * 60_000, absolute_ms: 12 * 3_600_000 }
    }
}

const RESET_TTL_MS: i64 = 24 * 3_600_000;
/// A session row with its tenant's timeouts: principal, principal id, tenant, CSRF token,
/// created, last seen, stage, idle and absolute minutes.
type SessionDb = (String, i64, Option<i64>, String, i64, i64, String, Option<i64>, Option<i64>);

/// A half-way sign-in (second factor or enrolment pending) lasts at most this long.
const HALF_SESSION_MS: i64 = 10 * 60_000;

#[derive(sqlx::FromRow)]
struct LoginRow {
    tenant_id: i64,
    password_hash: String,
    threshold: i64,
    #[sqlx(flatten)]
    account: AccountRow,
}

#[derive(sqlx::FromRow)]
struct TenantAccount {
    tenant_code: String,
    time_zone: String,
    #[sqlx(flatten)]
    account: AccountRow,
}

/// The notice mailed to the owner of an account that was just locked.
const LOCKED_SUBJECT: &str = "anpi アカウントがロックされました / Your anpi account was locked";
const LOCKED_BODY: &str = "ログインの失敗が続いたため、あなたのアカウントをロックしました。\n\
管理者にロックの解除を依頼してください。心当たりがない場合は、そのことも管理者に伝えてください。\n\n\
Your anpi account was locked after repeated failed sign-ins.\n\
Ask your administrator to unlock it. If this was not you, tell them so.\n";

impl Store {
    pub async fn create_operator(&self, email: &str, pw: &str, now: Millis) -> Result<i64> {
        let email = email.trim().to_lowercase();
        if !anpi_core::directory::valid_email(&email) {
            return Err(StoreError::Invalid(Problem::InvalidEmail));
        }
        password::check(pw, false, &[&email]).map_err(|p| StoreError::Invalid(Problem::Password(p)))?;
        let hash = hash_password(pw).await?;
        let id = sqlx::query_scalar(
            "INSERT INTO operators (email, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO UPDATE SET password_hash = excluded.password_hash RETURNING id",
        )
        .bind(&email)
        .bind(hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn operator_login(&self, email: &str, pw: &str) -> Result<Option<i64>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, password_hash FROM operators WHERE email = $1").bind(email.trim().to_lowercase()).fetch_optional(&self.pool).await?;
        let stored = row.as_ref().map(|r| r.1.as_str()).unwrap_or("");
        Ok(if verify_password(Lane::Stranger, pw, stored).await? { row.map(|r| r.0) } else { None })
    }

    /// Creates a tenant account. Without a password it cannot sign in until it sets one
    /// through a reset link.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_account(
        &self,
        scope: &TenantScope,
        email: &str,
        name: &str,
        role: Role,
        pw: Option<&str>,
        audit: &AuditEvent<'_>,
        now: Millis,
    ) -> Result<i64> {
        let email = email.trim().to_lowercase();
        if !anpi_core::directory::valid_email(&email) {
            return Err(StoreError::Invalid(Problem::InvalidEmail));
        }
        if name.trim().is_empty() {
            return Err(StoreError::Invalid(Problem::NameMissing));
        }
        let hash = match pw {
            Some(p) => {
                let (code, tenant_name) = self.tenant_words(scope.tenant_id()).await?;
                password::check(p, false, &[&code, &tenant_name, &email]).map_err(|e| StoreError::Invalid(Problem::Password(e)))?;
                hash_password(p).await?
            }
            None => String::new(),
        };
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE tenant_id = $1 AND email = $2")
            .bind(scope.tenant_id())
            .bind(&email)
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(Problem::EmailRegistered));
        }
        let mut tx = self.scoped_tx(scope).await?;
        let id: i64 =
            sqlx::query_scalar("INSERT INTO accounts (tenant_id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
                .bind(scope.tenant_id())
                .bind(email)
                .bind(name.trim())
                .bind(role.as_str())
                .bind(hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
        self.record(&mut tx, scope, &audit.on(format!("account:{id}")), now).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn accounts(&self, scope: &TenantScope) -> Result<Vec<Account>> {
        let rows: Vec<AccountRow> = sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.tenant_id = $1 ORDER BY a.id"))
            .bind(scope.tenant_id())
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?;
        Ok(rows.into_iter().map(AccountRow::into_account).collect())
    }

    pub async fn account(&self, scope: &TenantScope, id: i64) -> Result<Account> {
        let row: Option<AccountRow> = sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.tenant_id = $1 AND a.id = $2"))
            .bind(scope.tenant_id())
            .bind(id)
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?;
        row.map(AccountRow::into_account).ok_or(StoreError::NotFound)
    }

    /// Disables or enables an account; disabling ends its sessions at once.
    pub async fn set_account_disabled(&self, scope: &TenantScope, id: i64, disabled: bool, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let mut tx = self.scoped_tx(scope).await?;
        let n = sqlx::query("UPDATE accounts SET disabled = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(disabled as i64)
            .bind(scope.tenant_id())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        if disabled {
            sqlx::query("DELETE FROM sessions WHERE principal = 'account' AND principal_id = $1 AND tenant_id = $2")
                .bind(id)
                .bind(scope.tenant_id())
                .execute(&mut *tx)
                .await?;
        }
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Password sign-in for a tenant account. Unknown tenant, unknown email, wrong password,
    /// disabled and locked account are indistinguishable to the caller, in answer and in time
    /// (the Argon2 work is always done). A wrong password counts towards the lockout.
    pub async fn account_login(&self, tenant_code: &str, email: &str, pw: &str, now: Millis) -> Result<Option<(TenantScope, Account)>> {
        let row: Option<(i64, String, i64, AccountRow)> = sqlx::query_as::<_, LoginRow>(&format!(
            "SELECT a.tenant_id, a.password_hash, COALESCE(s.lockout_threshold, 100) AS threshold, {ACCOUNT_COLUMNS} \
             FROM accounts a JOIN tenants t ON t.id = a.tenant_id LEFT JOIN tenant_security s ON s.tenant_id = a.tenant_id \
             WHERE t.code = $1 AND a.email = $2"
        ))
        .bind(tenant_code.trim().to_lowercase())
        .bind(email.trim().to_lowercase())
        .fetch_optional(&mut *self.system().await?)
        .await?
        .map(|r| (r.tenant_id, r.password_hash, r.threshold, r.account));
        let stored = row.as_ref().map(|r| r.1.as_str()).unwrap_or("");
        let ok = verify_password(Lane::Stranger, pw, stored).await?;
        let Some((tenant, _, threshold, account)) = row else { return Ok(None) };
        let account = account.into_account();
        let scope = TenantScope::new(tenant);
        if account.disabled || account.locked {
            return Ok(None);
        }
        if !ok {
            self.note_failed_login(&scope, account.id, threshold, now).await?;
            return Ok(None);
        }
        sqlx::query("UPDATE accounts SET failed_logins = 0 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(account.id)
            .execute(&mut *self.scoped(&scope).await?)
            .await?;
        Ok(Some((scope, account)))
    }

    /// Counts a failed sign-in (password or second factor); locks the account at the
    /// tenant's threshold. Returns whether it is now locked. Locking is recorded in the audit
    /// log and mailed to the account's owner, in the same transaction.
    pub async fn note_failed_login(&self, scope: &TenantScope, account: i64, threshold: i64, now: Millis) -> Result<bool> {
        let ring = self.system_ring(scope.tenant_id()).await?;
        let mut tx = self.scoped_tx(scope).await?;
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "UPDATE accounts SET failed_logins = failed_logins + 1, last_failed_at = $3, \
               locked = CASE WHEN failed_logins + 1 >= $4 THEN 1 ELSE locked END \
             WHERE tenant_id = $1 AND id = $2 RETURNING locked, failed_logins, email",
        )
        .bind(scope.tenant_id())
        .bind(account)
        .bind(now)
        .bind(threshold.max(1))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((1, failures, email)) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        // Callers refuse locked accounts before counting, so this is the moment it locks.
        let e = AuditEvent {
            actor: crate::audit::Actor::Anonymous,
            target: format!("account:{account}"),
            outcome: "denied",
            detail: format!("{failures} failed sign-ins"),
            ..AuditEvent::system("account_locked")
        };
        self.record(&mut tx, scope, &e, now).await?;
        crate::outbox::enqueue_system(&mut tx, ring.as_ref(), scope.tenant_id(), &format!("locked:{account}:{now}"), &email, LOCKED_SUBJECT, LOCKED_BODY, now)
            .await?;
        tx.commit().await?;
        tracing::warn!(tenant = scope.tenant_id(), account, "account locked after failed sign-ins");
        Ok(true)
    }

    /// Sets a distributor's reach (departments and groups of the tenant; both empty: everyone).
    pub async fn set_reach(&self, scope: &TenantScope, account: i64, departments: &[i64], groups: &[i64], audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let t = scope.tenant_id();
        let mut tx = self.scoped_tx(scope).await?;
        for d in departments {
            let ok: Option<i64> =
                sqlx::query_scalar("SELECT id FROM departments WHERE tenant_id = $1 AND id = $2").bind(t).bind(d).fetch_optional(&mut *tx).await?;
            ok.ok_or(StoreError::NotFound)?;
        }
        for g in groups {
            let ok: Option<i64> =
                sqlx::query_scalar("SELECT id FROM contact_groups WHERE tenant_id = $1 AND id = $2").bind(t).bind(g).fetch_optional(&mut *tx).await?;
            ok.ok_or(StoreError::NotFound)?;
        }
        let join = |v: &[i64]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
        let done = sqlx::query("UPDATE accounts SET reach_departments = $3, reach_groups = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(t)
            .bind(account)
            .bind(join(departments))
            .bind(join(groups))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Re-authentication before a sensitive change: is `pw` the account's password? Throttled
    /// per account like sign-in ([`StoreError::Throttled`]), and a wrong password counts
    /// towards the lockout like a failed sign-in; when that locks the account, its sessions end.
    pub async fn reenter_password(&self, scope: &TenantScope, account: i64, pw: &str, now: Millis) -> Result<bool> {
        let keys = [crate::throttle_key("reauth", &format!("{}/{account}", scope.tenant_id()))];
        let wait = self.login_attempt(&keys, now).await?;
        if wait > 0 {
            return Err(StoreError::Throttled(wait));
        }
        let stored: Option<String> = sqlx::query_scalar("SELECT password_hash FROM accounts WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(account)
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?;
        if verify_password(Lane::Known, pw, stored.as_deref().unwrap_or("")).await? {
            self.clear_login_failures(&keys).await?;
            return Ok(true);
        }
        let threshold = self.security_policy(scope).await?.lockout_threshold;
        if self.note_failed_login(scope, account, threshold, now).await? {
            sqlx::query("DELETE FROM sessions WHERE principal = 'account' AND principal_id = $1 AND tenant_id = $2")
                .bind(account)
                .bind(scope.tenant_id())
                .execute(&mut *self.system().await?)
                .await?;
        }
        Ok(false)
    }

    /// Unlocks an account (admin action).
    pub async fn unlock_account(&self, scope: &TenantScope, id: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let unlock = sqlx::query("UPDATE accounts SET locked = 0, failed_logins = 0 WHERE tenant_id = $1 AND id = $2").bind(scope.tenant_id()).bind(id);
        self.change_one(scope, unlock, audit, now).await
    }

    /// Starts a full session, recording `audit`; returns the cookie token (only its hash is stored).
    pub async fn create_session(&self, principal: &str, principal_id: i64, scope: Option<&TenantScope>, audit: &AuditEvent<'_>, now: Millis) -> Result<String> {
        self.create_staged_session(principal, principal_id, scope, SessionStage::Full, &ClientInfo::default(), audit, now).await
    }

    /// Starts a session at `stage`, recording where it comes from.
    /// The event is recorded in the tenant's chain, or the operators' and system chain.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_staged_session(
        &self,
        principal: &str,
        principal_id: i64,
        scope: Option<&TenantScope>,
        stage: SessionStage,
        client: &ClientInfo,
        audit: &AuditEvent<'_>,
        now: Millis,
    ) -> Result<String> {
        let token = random_token();
        // An operator's session has no tenant.
        let mut tx = match scope {
            Some(s) => self.scoped_tx(s).await?,
            None => self.system_tx().await?,
        };
        let ua: String = client.user_agent.chars().take(200).collect();
        sqlx::query(
            "INSERT INTO sessions (token_hash, principal, principal_id, tenant_id, csrf, created_at, last_seen_at, stage, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)",
        )
        .bind(token_hash(&token))
        .bind(principal)
        .bind(principal_id)
        .bind(scope.map(|s| s.tenant_id()))
        .bind(random_token())
        .bind(now)
        .bind(stage.code())
        .bind(&client.ip)
        .bind(ua)
        .execute(&mut *tx)
        .await?;
        self.append_in(&mut tx, scope.map(|s| s.tenant_id()).unwrap_or(crate::audit::SYSTEM_CHAIN), audit, now).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Looks a session up, enforcing idle and absolute timeouts (the tenant's, else `policy`)
    /// and account state. Half-way sessions expire after ten minutes.
    pub async fn session(&self, token: &str, now: Millis, policy: SessionPolicy) -> Result<Option<AuthContext>> {
        let hash = token_hash(token);
        // Before a scope exists: the session names its tenant.
        let mut c = self.system().await?;
        let row: Option<SessionDb> = sqlx::query_as(
            "SELECT x.principal, x.principal_id, x.tenant_id, x.csrf, x.created_at, x.last_seen_at, x.stage, s.idle_min, s.absolute_min \
             FROM sessions x LEFT JOIN tenant_security s ON s.tenant_id = x.tenant_id WHERE x.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *c)
        .await?;
        let Some((kind, pid, tenant, csrf, created, seen, stage, idle_min, absolute_min)) = row else { return Ok(None) };
        let stage = SessionStage::parse(&stage);
        let idle = idle_min.map(|m| m * 60_000).unwrap_or(policy.idle_ms);
        let absolute = if stage == SessionStage::Full { absolute_min.map(|m| m * 60_000).unwrap_or(policy.absolute_ms) } else { HALF_SESSION_MS };
        if now - seen > idle || now - created > absolute {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(&hash).execute(&mut *c).await?;
            return Ok(None);
        }
        let principal = match (kind.as_str(), tenant) {
            ("operator", _) => {
                let email: Option<String> = sqlx::query_scalar("SELECT email FROM operators WHERE id = $1").bind(pid).fetch_optional(&mut *c).await?;
                match email {
                    Some(email) => Principal::Operator { id: pid, email },
                    None => return Ok(None),
                }
            }
            ("account", Some(tenant)) => {
                let row: Option<TenantAccount> = sqlx::query_as(&format!(
                    "SELECT t.code AS tenant_code, t.time_zone, {ACCOUNT_COLUMNS} FROM accounts a JOIN tenants t ON t.id = a.tenant_id WHERE a.tenant_id = $1 AND a.id = $2"
                ))
                .bind(tenant)
                .bind(pid)
                .fetch_optional(&mut *c)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let account = row.account.into_account();
                if account.disabled || account.locked {
                    return Ok(None);
                }
                Principal::Account { scope: TenantScope::new(tenant), account, tenant_code: row.tenant_code, time_zone: row.time_zone }
            }
            _ => return Ok(None),
        };
        if now - seen > 60_000 {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2").bind(now).bind(&hash).execute(&mut *c).await?;
        }
        Ok(Some(AuthContext { principal, csrf, stage }))
    }

    /// The account's full sessions, newest first.
    pub async fn account_sessions(&self, scope: &TenantScope, account: i64) -> Result<Vec<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT SUBSTR(token_hash, 1, 16) AS id, created_at, last_seen_at, ip, user_agent FROM sessions \
             WHERE principal = 'account' AND tenant_id = $1 AND principal_id = $2 AND stage = 'full' ORDER BY last_seen_at DESC",
        )
        .bind(scope.tenant_id())
        .bind(account)
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?)
    }

    /// Ends the account's sessions: all, or all but the one with cookie `keep`.
    /// The event's detail gets the number of sessions ended.
    pub async fn end_account_sessions(&self, scope: &TenantScope, account: i64, keep: Option<&str>, audit: &AuditEvent<'_>, now: Millis) -> Result<u64> {
        let keep = keep.map(token_hash).unwrap_or_default();
        let mut tx = self.scoped_tx(scope).await?;
        let n = sqlx::query("DELETE FROM sessions WHERE principal = 'account' AND tenant_id = $1 AND principal_id = $2 AND token_hash <> $3")
            .bind(scope.tenant_id())
            .bind(account)
            .bind(keep)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        self.record(&mut tx, scope, &AuditEvent { detail: format!("{n} session(s)"), ..audit.clone() }, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Ends one of the account's sessions, named by [`SessionRow::id`].
    pub async fn end_account_session(&self, scope: &TenantScope, account: i64, id: &str, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NotFound);
        }
        let end = sqlx::query("DELETE FROM sessions WHERE principal = 'account' AND tenant_id = $1 AND principal_id = $2 AND SUBSTR(token_hash, 1, 16) = $3")
            .bind(scope.tenant_id())
            .bind(account)
            .bind(id);
        self.change_one(scope, end, audit, now).await
    }

    /// Ends the session with cookie `token` (signing out; also a half-way sign-in given up).
    pub async fn end_session(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash(token)).execute(&mut *self.system().await?).await?;
        Ok(())
    }

    /// Signs the session out and records it in the tenant's chain.
    pub async fn sign_out(&self, scope: &TenantScope, token: &str, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1 AND tenant_id = $2").bind(token_hash(token)).bind(scope.tenant_id()).execute(&mut *tx).await?;
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn change_password(&self, scope: &TenantScope, account_id: i64, old: &str, new: &str, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        if !self.reenter_password(scope, account_id, old, now).await? {
            return Err(StoreError::Invalid(Problem::WrongCurrentPassword));
        }
        self.set_password(scope.tenant_id(), account_id, new, None, audit, now).await
    }

    /// The tenant's code and name: context-specific words a password must not contain
    /// (see `anpi_core::password`).
    async fn tenant_words(&self, tenant_id: i64) -> Result<(String, String)> {
        sqlx::query_as("SELECT code, name FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&mut *self.scoped(&TenantScope::new(tenant_id)).await?)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn set_password(&self, tenant_id: i64, account_id: i64, new: &str, reset_hash: Option<&str>, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let scope = TenantScope::new(tenant_id);
        let with_mfa = self.mfa_enrolled(&scope, account_id).await?;
        let (code, tenant_name) = self.tenant_words(tenant_id).await?;
        let email: String = sqlx::query_scalar("SELECT email FROM accounts WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(account_id)
            .fetch_optional(&mut *self.scoped(&scope).await?)
            .await?
            .ok_or(StoreError::NotFound)?;
        password::check(new, with_mfa, &[&code, &tenant_name, &email]).map_err(|p| StoreError::Invalid(Problem::Password(p)))?;
        let hash = hash_password(new).await?;
        let mut tx = self.scoped_tx(&scope).await?;
        // A reset link is spent first, once: of two uses at the same time one finds it spent.
        if let Some(h) = reset_hash {
            let spent = sqlx::query("UPDATE password_resets SET used = 1 WHERE token_hash = $1 AND used = 0 AND expires_at > $2")
                .bind(h)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if spent.rows_affected() != 1 {
                return Err(StoreError::Invalid(Problem::LinkInvalid));
            }
        }
        sqlx::query("UPDATE accounts SET password_hash = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(hash)
            .bind(tenant_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        // A new password ends every other session of the account.
        sqlx::query("DELETE FROM sessions WHERE principal = 'account' AND principal_id = $1 AND tenant_id = $2")
            .bind(account_id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        self.record(&mut tx, &scope, &audit.on(email), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates a reset link token for an account and queues the mail (composed by the
    /// caller), in one transaction. Unknown accounts do nothing, silently.
    pub async fn request_password_reset(
        &self,
        tenant_code: &str,
        email: &str,
        now: Millis,
        compose: impl FnOnce(&str, &str) -> (String, String),
    ) -> Result<bool> {
        let row: Option<(i64, i64, String, i64)> = sqlx::query_as(
            "SELECT a.tenant_id, a.id, a.email, a.disabled FROM accounts a JOIN tenants t ON t.id = a.tenant_id WHERE t.code = $1 AND a.email = $2",
        )
        .bind(tenant_code.trim().to_lowercase())
        .bind(email.trim().to_lowercase())
        .fetch_optional(&mut *self.system().await?)
        .await?;
        let Some((tenant, id, email, 0)) = row else { return Ok(false) };
        self.queue_reset(tenant, id, &email, now, compose).await?;
        Ok(true)
    }

    /// Sends a first-password link to a new account (operator or admin created it).
    pub async fn invite_account(&self, scope: &TenantScope, account_id: i64, now: Millis, compose: impl FnOnce(&str, &str) -> (String, String)) -> Result<()> {
        let email: String = sqlx::query_scalar("SELECT email FROM accounts WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(account_id)
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.queue_reset(scope.tenant_id(), account_id, &email, now, compose).await
    }

    async fn queue_reset(&self, tenant: i64, account: i64, email: &str, now: Millis, compose: impl FnOnce(&str, &str) -> (String, String)) -> Result<()> {
        let token = random_token();
        let hash = token_hash(&token);
        let (subject, body) = compose(&token, email);
        let ring = self.system_ring(tenant).await?;
        let mut tx = self.scoped_tx(&TenantScope::new(tenant)).await?;
        sqlx::query("INSERT INTO password_resets (token_hash, tenant_id, account_id, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&hash)
            .bind(tenant)
            .bind(account)
            .bind(now + RESET_TTL_MS)
            .execute(&mut *tx)
            .await?;
        crate::outbox::enqueue_system(&mut tx, ring.as_ref(), tenant, &format!("reset:{hash}"), email, &subject, &body, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a reset token is valid now (for showing the form).
    pub async fn reset_token_valid(&self, token: &str, now: Millis) -> Result<bool> {
        Ok(self.reset_target(token, now).await?.is_some())
    }

    async fn reset_target(&self, token: &str, now: Millis) -> Result<Option<(i64, i64)>> {
        Ok(sqlx::query_as("SELECT tenant_id, account_id FROM password_resets WHERE token_hash = $1 AND used = 0 AND expires_at > $2")
            .bind(token_hash(token))
            .bind(now)
            .fetch_optional(&mut *self.system().await?)
            .await?)
    }

    /// Sets a new password through a reset link; `audit` is recorded with the account as actor.
    pub async fn reset_password(&self, token: &str, new: &str, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let Some((tenant, account)) = self.reset_target(token, now).await? else {
            return Err(StoreError::Invalid(Problem::LinkInvalid));
        };
        let audit = AuditEvent { actor: crate::audit::Actor::Account(account), ..audit.clone() };
        self.set_password(tenant, account, new, Some(&token_hash(token)), &audit, now).await
    }
}
