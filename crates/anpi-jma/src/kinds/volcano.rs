//! 噴火警報・予報 (VFVO50).

use jmaxml::model::{VolcBody, VolcKind};

use crate::area::{AffectedArea, AreaCode, AreaSet};
use crate::severity::{Severity, VolcanicAlert};

/// Highest level a municipality kind allows: 噴火警報 (居住地域) → 5, 火口周辺警報 → 3,
/// 噴火予報 (incl. 警報解除) → 1.
fn municipality_cap(kind: &VolcKind) -> Option<VolcanicAlert> {
    let name = kind.name.trim();
    let code = kind.code.as_deref().map(str::trim).unwrap_or("");
    if name.starts_with("噴火予報") || matches!(code, "04" | "05") {
        Some(VolcanicAlert::Level1)
    } else if name.starts_with("火口周辺警報") || code == "02" {
        Some(VolcanicAlert::Level3)
    } else if name.starts_with("噴火警報") || matches!(code, "01" | "03") {
        Some(VolcanicAlert::Level5)
    } else {
        None
    }
}

/// Municipalities in `VolcanoInfo[@type="噴火警報・予報（対象市町村等）"]`, each at the volcano's
/// alert level (from `…（対象火山）`) capped by the municipality's own warning kind.
pub(super) fn eruption_warning(body: &VolcBody) -> Vec<AffectedArea> {
    let volcano_level = body
        .volcano_infos
        .iter()
        .filter(|info| info.ty.contains("対象火山"))
        .flat_map(|info| info.items.iter())
        .filter_map(|item| VolcanicAlert::from_kind(item.kind.code.as_deref().unwrap_or(""), &item.kind.name))
        .max();
    let mut set = AreaSet::default();
    for info in body.volcano_infos.iter().filter(|info| info.ty.trim() == "噴火警報・予報（対象市町村等）") {
        for item in &info.items {
            let Some(cap) = municipality_cap(&item.kind) else {
                continue;
            };
            let level = volcano_level.map_or(cap, |v| v.min(cap));
            for area in &item.areas.areas {
                if let Some(code) = AreaCode::from_jma(&area.code) {
                    set.add(code, &area.name, Severity::Volcano(level));
                }
            }
        }
    }
    set.into_vec()
}
