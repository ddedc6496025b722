//! Who an incident is sent to.

use crate::AreaCode;
use serde::{Deserialize, Serialize};

/// An incident's target. Empty lists mean "no restriction of that kind"; with every list
/// empty and `all` false nobody is targeted. A person matches when they match any list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub all: bool,
    pub departments: Vec<i64>,
    pub sites: Vec<i64>,
    pub groups: Vec<i64>,
    pub areas: Vec<AreaCode>,
    /// Which of a person's areas `areas` is matched against.
    #[serde(default)]
    pub basis: AreaBasis,
}

/// Which of a person's areas counts for area targeting: where they live, where they work
/// (their site's area), or either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaBasis {
    Home,
    Work,
    #[default]
    Both,
}

impl AreaBasis {
    pub fn parse(s: &str) -> Option<AreaBasis> {
        match s.trim() {
            "home" => Some(AreaBasis::Home),
            "work" => Some(AreaBasis::Work),
            "both" => Some(AreaBasis::Both),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            AreaBasis::Home => "home",
            AreaBasis::Work => "work",
            AreaBasis::Both => "both",
        }
    }
    pub fn uses_home(self) -> bool {
        matches!(self, AreaBasis::Home | AreaBasis::Both)
    }
    pub fn uses_work(self) -> bool {
        matches!(self, AreaBasis::Work | AreaBasis::Both)
    }
}

/// What targeting needs to know of a person.
pub struct PersonFacts<'a> {
    /// The person's department and its ancestors.
    pub departments: &'a [i64],
    pub site: Option<i64>,
    pub site_area: Option<&'a AreaCode>,
    pub home_area: Option<&'a AreaCode>,
    pub groups: &'a [i64],
}

impl Target {
    pub fn is_empty(&self) -> bool {
        !self.all && self.departments.is_empty() && self.sites.is_empty() && self.groups.is_empty() && self.areas.is_empty()
    }

    pub fn matches(&self, p: &PersonFacts) -> bool {
        if self.all {
            return true;
        }
        let in_area = |a: Option<&AreaCode>| a.is_some_and(|a| self.areas.iter().any(|t| t.covers(a)));
        p.departments.iter().any(|d| self.departments.contains(d))
            || p.site.is_some_and(|s| self.sites.contains(&s))
            || p.groups.iter().any(|g| self.groups.contains(g))
            || (self.basis.uses_home() && in_area(p.home_area))
            || (self.basis.uses_work() && in_area(p.site_area))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn matching() {
        let shinjuku = AreaCode::parse("13104").unwrap();
        let p = PersonFacts { departments: &[3, 1], site: Some(7), site_area: None, home_area: Some(&shinjuku), groups: &[] };
        assert!(Target { departments: vec![1], ..Default::default() }.matches(&p));
        assert!(Target { areas: vec![AreaCode::parse("13").unwrap()], ..Default::default() }.matches(&p));
        assert!(!Target { areas: vec![AreaCode::parse("14").unwrap()], ..Default::default() }.matches(&p));
        assert!(!Target::default().matches(&p));
        assert!(Target { all: true, ..Default::default() }.matches(&p));
        let tokyo = || vec![AreaCode::parse("13").unwrap()];
        assert!(Target { areas: tokyo(), basis: AreaBasis::Home, ..Default::default() }.matches(&p));
        assert!(!Target { areas: tokyo(), basis: AreaBasis::Work, ..Default::default() }.matches(&p), "no site area");
    }
}
