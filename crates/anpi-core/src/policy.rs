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

impl Permission {
    pub const ALL: [Permission; 10] = [
        Permission::ViewIncidents,
        Permission::StartIncident,
        Permission::ManageIncident,
        Permission::ViewDirectory,
        Permission::ManageDirectory,
        Permission::ManageAccounts,
        Permission::ViewHazards,
        Permission::ManageRules,
        Permission::ManageSecurity,
        Permission::ManageLabels,
    ];

    /// What the permission allows, in Japanese and English (the role matrix page).
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Permission::ViewIncidents => ("配信と回答状況の閲覧・回答のCSV出力", "View incidents and answers, export answers"),
            Permission::StartIncident => ("配信の開始", "Start incidents"),
            Permission::ManageIncident => ("再送・配信の終了", "Re-send and close incidents"),
            Permission::ViewDirectory => ("名簿の閲覧", "View the directory"),
            Permission::ManageDirectory => ("名簿・組織の編集、CSV取り込み・出力", "Edit the directory and organisation, CSV import and export"),
            Permission::ManageAccounts => (
                "アカウント管理（作成・無効化・ロック解除・2段階認証のリセット・配信範囲）",
                "Manage accounts (create, disable, unlock, reset two-step sign-in, reach)",
            ),
            Permission::ViewHazards => ("気象庁の情報と自動配信の判定の閲覧", "View JMA information and rule decisions"),
            Permission::ManageRules => ("自動配信ルールの設定", "Set up dispatch rules"),
            Permission::ManageSecurity => (
                "セキュリティ設定（2段階認証の方針、接続元IP、クライアント証明書）とログ",
                "Security settings (MFA policy, IP allowlists, client certificates) and logs",
            ),
            Permission::ManageLabels => ("情報の区分の設定", "Define classification labels"),
        }
    }
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Distributor, Role::Member];

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
