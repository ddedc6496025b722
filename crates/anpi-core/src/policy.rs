//! Who may do what. Every permission check in anpi goes through [`Role::can`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// システム管理者: everything in the tenant.
    Admin,
    /// 配信権限: starts incidents and follows their answers.
    Distributor,
    /// 一般ユーザー: signs in, manages own password.
    Member,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ViewIncidents,
    StartIncident,
    ManageIncident,
    ViewDirectory,
    ManageDirectory,
    ManageAccounts,
    /// See JMA telegrams and what the rules decided.
    ViewHazards,
    /// Create, change and delete automatic dispatch rules.
    ManageRules,
    /// Set the tenant's security settings (IP allowlists).
    ManageSecurity,
    /// Define classification labels and who may export what they mark.
    ManageLabels,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "distributor" => Some(Role::Distributor),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Distributor => "distributor",
            Role::Member => "member",
        }
    }
    pub fn label_ja(self) -> &'static str {
        match self {
            Role::Admin => "システム管理者",
            Role::Distributor => "配信権限",
            Role::Member => "一般ユーザー",
        }
    }
    /// Member < distributor < admin.
    fn rank(self) -> u8 {
        match self {
            Role::Member => 0,
            Role::Distributor => 1,
            Role::Admin => 2,
        }
    }
    /// Whether this role is `min` or above: a classification label's export restriction is
    /// the lowest role that may export what it marks.
    pub fn at_least(self, min: Role) -> bool {
        self.rank() >= min.rank()
    }
    /// An export restriction (`at_least(self)`) as the labels page shows it.
    pub fn export_restriction(self, lang: crate::Lang) -> &'static str {
        match self {
            Role::Admin => lang.pick("システム管理者のみ", "admins only"),
            Role::Distributor => lang.pick("システム管理者と配信権限", "admins and distributors"),
            Role::Member => lang.pick("コンソールを使える全員", "everyone with console access"),
        }
    }
    pub fn can(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Distributor => matches!(p, ViewIncidents | StartIncident | ManageIncident | ViewDirectory | ViewHazards),
            Role::Member => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn matrix() {
        assert!(Role::Admin.can(Permission::ManageAccounts));
        assert!(Role::Distributor.can(Permission::StartIncident));
        assert!(!Role::Distributor.can(Permission::ManageDirectory));
        assert!(Role::Distributor.can(Permission::ViewHazards));
        assert!(!Role::Distributor.can(Permission::ManageRules));
        assert!(Role::Admin.can(Permission::ManageSecurity));
        assert!(!Role::Distributor.can(Permission::ManageSecurity));
        assert!(!Role::Member.can(Permission::ManageSecurity));
        assert!(!Role::Member.can(Permission::ViewHazards));
        assert!(!Role::Member.can(Permission::ViewIncidents));
        assert!(!Role::Distributor.can(Permission::ManageLabels));
        assert!(Role::Admin.can(Permission::ManageLabels));
        for r in ["admin", "distributor", "member"] {
            assert_eq!(Role::parse(r).unwrap().as_str(), r);
        }
    }

    #[test]
    fn export_restrictions_are_minimum_roles() {
        use Role::*;
        assert!(Admin.at_least(Admin) && Admin.at_least(Distributor) && Admin.at_least(Member));
        assert!(!Distributor.at_least(Admin) && Distributor.at_least(Distributor) && Distributor.at_least(Member));
        assert!(!Member.at_least(Admin) && !Member.at_least(Distributor) && Member.at_least(Member));
    }
}
