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
        for r in ["admin", "distributor", "member"] {
            assert_eq!(Role::parse(r).unwrap().as_str(), r);
        }
    }
}
