//! Document → [`ValidatedPolicy`]: every error names the JSON path and the reason, and all
//! errors of a document are reported at once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::addr::{parse_addr, AddrRange};
use super::document::{PolicyDocument, PortSpec, ProtoSpec, ServiceEntry};
use super::inventory::{Inventory, InventoryDocument, Workload};
use super::validated::{
    AddrMatch, AddrSet, PortRange, ResolvedRule, RuleId, ServiceMatch, ValidatedPolicy,
};

/// One problem in a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// JSON path, e.g. `rules[3].destination.ports[0]`.
    pub path: String,
    /// Why it is wrong.
    pub reason: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Every problem found in a document (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// Whether some error's path is exactly `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

/// What validation checks the document against besides itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValidateOptions<'a> {
    /// The generation the node enforces now; a document not newer is stale.
    pub current_generation: Option<u64>,
    /// The separately published inventory; it is merged over the document's own
    /// `inventory` (same-name workloads from here win, being the newer feed).
    pub inventory: Option<&'a Inventory>,
}

struct Errors(Vec<ValidationError>);

/// Where in the document a value sits, formatted only when an error is reported: validating a
/// 10K-rule document must not build ~50K path strings that are thrown away.
type At<'a> = &'a dyn Fn(&str) -> String;

impl Errors {
    fn push(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

impl PolicyDocument {
    /// Validates with no generation check and no external inventory.
    pub fn validate_standalone(&self) -> Result<ValidatedPolicy, ValidationErrors> {
        self.validate(&ValidateOptions::default())
    }

    /// Validates and rejects a generation not newer than `current_generation`.
    pub fn validate_against(
        &self,
        current_generation: Option<u64>,
    ) -> Result<ValidatedPolicy, ValidationErrors> {
        self.validate(&ValidateOptions {
            current_generation,
            inventory: None,
        })
    }

    /// Validates and resolves the document.
    pub fn validate(
        &self,
        opts: &ValidateOptions<'_>,
    ) -> Result<ValidatedPolicy, ValidationErrors> {
        let mut errs = Errors(Vec::new());
        if let Some(cur) = opts.current_generation {
            if self.generation <= cur {
                errs.push(
                    "generation",
                    format!(
                        "stale generation {}: this node already enforces generation {cur}",
                        self.generation
                    ),
                );
            }
        }
        let workloads = resolve_inventory(&self.inventory, opts.inventory, &mut errs);
        let groups = resolve_groups(self, &workloads, &mut errs);
        let services = resolve_services(self, &mut errs);
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut disabled = Vec::new();
        let mut ids: HashMap<i64, usize> = HashMap::with_capacity(self.rules.len());
        for (ri, spec) in self.rules.iter().enumerate() {
            let at = |suffix: &str| format!("rules[{ri}]{suffix}");
            let id = match u32::try_from(spec.id) {
                Ok(id) => Some(RuleId(id)),
                Err(_) => {
                    errs.push(
                        at(".id"),
                        format!("rule id {} is out of range 0..=4294967295", spec.id),
                    );
                    None
                }
            };
            if let Some(prev) = ids.insert(spec.id, ri) {
                errs.push(
                    at(".id"),
                    format!("duplicate rule id {} (also rules[{prev}])", spec.id),
                );
            }
            let source = resolve_endpoint(&spec.source, &groups, &at, ".source", &mut errs);
            let destination =
                resolve_endpoint(&spec.destination, &groups, &at, ".destination", &mut errs);
            let svc = resolve_rule_services(spec, &services, &at, &mut errs);
            let vlan = spec.vlan.and_then(|v| match u16::try_from(v) {
                Ok(v) if v <= 4095 => Some(v),
                _ => {
                    errs.push(at(".vlan"), format!("VLAN id {v} is out of range 0..=4095"));
                    None
                }
            });
            let vni = spec.vni.and_then(|v| match u32::try_from(v) {
                Ok(v) if v <= 0xff_ffff => Some(v),
                _ => {
                    errs.push(at(".vni"), format!("VNI {v} is out of range 0..=16777215"));
                    None
                }
            });
            let Some(id) = id else { continue };
            if spec.disabled {
                disabled.push(id);
                continue;
            }
            rules.push(ResolvedRule {
                id,
                name: spec.name.as_deref().map(Arc::from),
                category: spec.category,
                position: ri,
                source,
                destination,
                services: svc,
                vlan,
                vni,
                direction: spec.direction,
                action: spec.action,
                log: spec.log,
                monitor: spec.monitor,
                tcp: spec.tcp,
            });
        }
        if !errs.0.is_empty() {
            return Err(ValidationErrors(errs.0));
        }
        // Categories first, document order inside a category (the sort is stable).
        rules.sort_by_key(|r| r.category);
        Ok(ValidatedPolicy {
            generation: self.generation,
            default_action: self.default_action,
            rules,
            disabled,
        })
    }
}

impl InventoryDocument {
    /// Validates an update on its own (before it is merged into a node's inventory): names,
    /// addresses and tags, each error naming its path (`workloads[2].addresses[0]: …`).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = Errors(Vec::new());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, w) in self.workloads.iter().enumerate() {
            if w.name.is_empty() {
                errs.push(format!("workloads[{i}].name"), "workload name is empty");
            } else if let Some(prev) = seen.insert(&w.name, i) {
                errs.push(
                    format!("workloads[{i}].name"),
                    format!(
                        "duplicate workload name {:?} (also workloads[{prev}])",
                        w.name
                    ),
                );
            }
            for (ai, a) in w.addresses.iter().enumerate() {
                if let Err(e) = parse_addr(a) {
                    errs.push(format!("workloads[{i}].addresses[{ai}]"), e);
                }
            }
            for (ti, t) in w.tags.iter().enumerate() {
                if t.is_empty() {
                    errs.push(format!("workloads[{i}].tags[{ti}]"), "tag is empty");
                }
            }
        }
        for (i, name) in self.removed.iter().enumerate() {
            if name.is_empty() {
                errs.push(format!("removed[{i}]"), "workload name is empty");
            } else if let Some(&wi) = seen.get(name.as_str()) {
                errs.push(
                    format!("removed[{i}]"),
                    format!("workload {name:?} is both updated (workloads[{wi}]) and removed"),
                );
            }
        }
        if errs.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errs.0))
        }
    }
}

/// A workload with parsed addresses.
struct ResolvedWorkload<'a> {
    w: &'a Workload,
    ranges: Vec<AddrRange>,
}

fn resolve_inventory<'a>(
    inline: &'a [Workload],
    external: Option<&'a Inventory>,
    errs: &mut Errors,
) -> Vec<ResolvedWorkload<'a>> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(inline.len());
    for (i, w) in inline.iter().enumerate() {
        if let Some(prev) = seen.insert(&w.name, i) {
            errs.push(
                format!("inventory[{i}].name"),
                format!(
                    "duplicate workload name {:?} (also inventory[{prev}])",
                    w.name
                ),
            );
        }
    }
    // The external feed is newer: it replaces a same-name inline workload. The index is the
    // inline position (for error paths); `None` marks an external workload.
    let mut chosen: Vec<(Option<usize>, &'a Workload)> = inline
        .iter()
        .enumerate()
        .filter(|(_, w)| !external.is_some_and(|e| e.contains(&w.name)))
        .map(|(i, w)| (Some(i), w))
        .collect();
    if let Some(ext) = external {
        chosen.extend(ext.workloads().map(|w| (None, w)));
    }
    let mut out = Vec::with_capacity(chosen.len());
    for (i, w) in chosen {
        let mut ranges = Vec::with_capacity(w.addresses.len());
        for (ai, a) in w.addresses.iter().enumerate() {
            match parse_addr(a) {
                Ok(r) => ranges.extend(r),
                Err(e) => errs.push(
                    match i {
                        Some(i) => format!("inventory[{i}].addresses[{ai}]"),
                        None => format!("inventory(workload {:?}).addresses[{ai}]", w.name),
                    },
                    e,
                ),
            }
        }
        out.push(ResolvedWorkload { w, ranges });
    }
    out
}

fn resolve_groups(
    doc: &PolicyDocument,
    workloads: &[ResolvedWorkload<'_>],
    errs: &mut Errors,
) -> HashMap<String, Vec<AddrMatch>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (gi, g) in doc.groups.iter().enumerate() {
        if g.name.is_empty() {
            errs.push(format!("groups[{gi}].name"), "group name is empty");
        }
        if let Some(prev) = index.insert(&g.name, gi) {
            errs.push(
                format!("groups[{gi}].name"),
                format!("duplicate group name {:?} (also groups[{prev}])", g.name),
            );
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Visiting,
        Done,
    }
    struct Ctx<'d, 'w> {
        doc: &'d PolicyDocument,
        workloads: &'d [ResolvedWorkload<'w>],
        index: HashMap<&'d str, usize>,
        state: Vec<State>,
        out: Vec<Vec<AddrMatch>>,
        stack: Vec<usize>,
    }
    fn visit(cx: &mut Ctx<'_, '_>, gi: usize, errs: &mut Errors) {
        if cx.state[gi] != State::New {
            return;
        }
        cx.state[gi] = State::Visiting;
        cx.stack.push(gi);
        let g = &cx.doc.groups[gi];
        let label: Arc<str> = Arc::from(format!("group {}", g.name));
        let mut members = Vec::new();
        for (ai, a) in g.addresses.iter().enumerate() {
            match parse_addr(a) {
                Ok(rs) => members.extend(rs.into_iter().map(|range| AddrMatch {
                    range,
                    via: Some(label.clone()),
                })),
                Err(e) => errs.push(format!("groups[{gi}].addresses[{ai}]"), e),
            }
        }
        for (ni, name) in g.groups.iter().enumerate() {
            let path = format!("groups[{gi}].groups[{ni}]");
            let Some(&ci) = cx.index.get(name.as_str()) else {
                errs.push(path, format!("unknown group {name:?}"));
                continue;
            };
            match cx.state[ci] {
                State::Visiting => {
                    let start = cx.stack.iter().position(|&x| x == ci).unwrap_or(0);
                    let mut chain: Vec<&str> = cx.stack[start..]
                        .iter()
                        .map(|&x| cx.doc.groups[x].name.as_str())
                        .collect();
                    chain.push(name);
                    errs.push(
                        path,
                        format!("cyclic group reference {}", chain.join(" -> ")),
                    );
                    continue;
                }
                State::New => visit(cx, ci, errs),
                State::Done => {}
            }
            let inner = cx.out[ci].clone();
            members.extend(inner.into_iter().map(|m| AddrMatch {
                range: m.range,
                via: Some(Arc::from(format!(
                    "{label} > {}",
                    m.via.as_deref().unwrap_or("?")
                ))),
            }));
        }
        if !g.match_tags.is_empty() {
            for rw in cx.workloads {
                if g.match_tags.iter().all(|t| rw.w.tags.contains(t)) {
                    let via: Arc<str> = Arc::from(format!(
                        "{label} (tags {}) > workload {}",
                        g.match_tags.join(","),
                        rw.w.name
                    ));
                    members.extend(rw.ranges.iter().map(|&range| AddrMatch {
                        range,
                        via: Some(via.clone()),
                    }));
                }
            }
        }
        cx.out[gi] = members;
        cx.stack.pop();
        cx.state[gi] = State::Done;
    }
    let n = doc.groups.len();
    let mut cx = Ctx {
        doc,
        workloads,
        index,
        state: vec![State::New; n],
        out: vec![Vec::new(); n],
        stack: Vec::new(),
    };
    for gi in 0..n {
        visit(&mut cx, gi, errs);
    }
    let mut map = HashMap::new();
    for (gi, members) in cx.out.into_iter().enumerate() {
        map.entry(doc.groups[gi].name.clone()).or_insert(members);
    }
    map
}

fn resolve_endpoint(
    spec: &super::document::EndpointSpec,
    groups: &HashMap<String, Vec<AddrMatch>>,
    at: At<'_>,
    side: &str,
    errs: &mut Errors,
) -> AddrSet {
    if spec.addresses.is_empty() && spec.groups.is_empty() {
        if spec.negate {
            errs.push(
                at(&format!("{side}.negate")),
                "negation needs addresses or groups (NOT any matches nothing)",
            );
        }
        return AddrSet::any();
    }
    let mut entries = Vec::with_capacity(spec.addresses.len());
    for (ai, a) in spec.addresses.iter().enumerate() {
        match parse_addr(a) {
            Ok(rs) => entries.extend(rs.into_iter().map(|range| AddrMatch { range, via: None })),
            Err(e) => errs.push(at(&format!("{side}.addresses[{ai}]")), e),
        }
    }
    for (gi, name) in spec.groups.iter().enumerate() {
        match groups.get(name) {
            Some(m) => entries.extend(m.iter().cloned()),
            None => errs.push(
                at(&format!("{side}.groups[{gi}]")),
                format!("unknown group {name:?}"),
            ),
        }
    }
    AddrSet {
        any: false,
        entries,
        negate: spec.negate,
    }
}

fn parse_proto(p: &ProtoSpec) -> Result<Option<u8>, String> {
    const NAMES: [(&str, Option<u8>); 10] = [
        ("any", None),
        ("icmp", Some(1)),
        ("tcp", Some(6)),
        ("udp", Some(17)),
        ("gre", Some(47)),
        ("esp", Some(50)),
        ("ah", Some(51)),
        ("icmpv6", Some(58)),
        ("ipv6-icmp", Some(58)),
        ("sctp", Some(132)),
    ];
    match p {
        ProtoSpec::Number(n) => u8::try_from(*n)
            .map(Some)
            .map_err(|_| format!("protocol {n} is out of range 0..=255")),
        // Compared case-insensitively in place: no lowercased copy per rule.
        ProtoSpec::Name(s) => match NAMES.iter().find(|(name, _)| s.eq_ignore_ascii_case(name)) {
            Some(&(_, proto)) => Ok(proto),
            None => s
                .parse::<u8>()
                .map(Some)
                .map_err(|_| format!("unknown protocol {s:?}")),
        },
    }
}

fn parse_port_num(n: i64) -> Result<u16, String> {
    u16::try_from(n).map_err(|_| format!("port {n} is out of range 0..=65535"))
}

fn parse_port(p: &PortSpec) -> Result<PortRange, String> {
    match p {
        PortSpec::Number(n) => parse_port_num(*n).map(PortRange::single),
        PortSpec::Text(s) => {
            let num = |t: &str| -> Result<u16, String> {
                let n: i64 = t
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s:?} is not a port or a port range lo-hi"))?;
                parse_port_num(n)
            };
            match s.split_once('-') {
                Some((a, b)) => {
                    let (lo, hi) = (num(a)?, num(b)?);
                    if lo > hi {
                        return Err(format!(
                            "port range {s:?} has its first port above its last"
                        ));
                    }
                    Ok(PortRange { lo, hi })
                }
                None => num(s).map(PortRange::single),
            }
        }
    }
}

fn has_ports(proto: Option<u8>) -> bool {
    matches!(proto, Some(6 | 17 | 132))
}

fn is_icmp(proto: Option<u8>) -> bool {
    matches!(proto, Some(1 | 58))
}

/// Expands one protocol entry (named or inline) into matches.
#[allow(clippy::too_many_arguments)]
fn expand_entry(
    proto: &ProtoSpec,
    dports: &[PortSpec],
    sports: &[PortSpec],
    icmp_type: Option<i64>,
    icmp_code: Option<i64>,
    at: At<'_>,
    dport_suffix: &str,
    sport_suffix: &str,
    via: Option<Arc<str>>,
    errs: &mut Errors,
) -> Vec<ServiceMatch> {
    let proto = match parse_proto(proto) {
        Ok(p) => p,
        Err(e) => {
            errs.push(at(".protocol"), e);
            return Vec::new();
        }
    };
    let mut ranges = |list: &[PortSpec], suffix: &str| -> Vec<PortRange> {
        if list.is_empty() {
            return vec![PortRange::ANY];
        }
        if !has_ports(proto) {
            errs.push(at(suffix), "ports need protocol tcp, udp or sctp");
            return Vec::new();
        }
        let mut v = Vec::with_capacity(list.len());
        for (i, x) in list.iter().enumerate() {
            match parse_port(x) {
                Ok(r) => v.push(r),
                Err(e) => errs.push(at(&format!("{suffix}[{i}]")), e),
            }
        }
        v
    };
    let d = ranges(dports, dport_suffix);
    let s = ranges(sports, sport_suffix);
    let mut out = Vec::new();
    if icmp_type.is_some() || icmp_code.is_some() {
        if !is_icmp(proto) {
            errs.push(
                at(".icmp_type"),
                "icmp_type/icmp_code need protocol icmp or icmpv6",
            );
            return out;
        }
        let ty = match icmp_type {
            None => {
                errs.push(at(".icmp_code"), "icmp_code needs icmp_type");
                return out;
            }
            Some(t) => match u8::try_from(t) {
                Ok(t) => PortRange::single(t as u16),
                Err(_) => {
                    errs.push(
                        at(".icmp_type"),
                        format!("ICMP type {t} is out of range 0..=255"),
                    );
                    return out;
                }
            },
        };
        let code = match icmp_code {
            None => PortRange { lo: 0, hi: 255 },
            Some(c) => match u8::try_from(c) {
                Ok(c) => PortRange::single(c as u16),
                Err(_) => {
                    errs.push(
                        at(".icmp_code"),
                        format!("ICMP code {c} is out of range 0..=255"),
                    );
                    return out;
                }
            },
        };
        out.push(ServiceMatch {
            proto,
            sport: ty,
            dport: code,
            via,
        });
        return out;
    }
    for &sp in &s {
        for &dp in &d {
            out.push(ServiceMatch {
                proto,
                sport: sp,
                dport: dp,
                via: via.clone(),
            });
        }
    }
    out
}

fn resolve_services(doc: &PolicyDocument, errs: &mut Errors) -> HashMap<String, Vec<ServiceMatch>> {
    let mut map: HashMap<String, Vec<ServiceMatch>> = HashMap::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (si, s) in doc.services.iter().enumerate() {
        let p = format!("services[{si}]");
        if let Some(prev) = seen.insert(&s.name, si) {
            errs.push(
                format!("{p}.name"),
                format!(
                    "duplicate service name {:?} (also services[{prev}])",
                    s.name
                ),
            );
        }
        if s.entries.is_empty() {
            errs.push(format!("{p}.entries"), "a service needs at least one entry");
        }
        let via: Arc<str> = Arc::from(format!("service {}", s.name));
        let mut all = Vec::new();
        for (
            ei,
            ServiceEntry {
                protocol,
                ports,
                source_ports,
                icmp_type,
                icmp_code,
            },
        ) in s.entries.iter().enumerate()
        {
            let at = |suffix: &str| format!("{p}.entries[{ei}]{suffix}");
            all.extend(expand_entry(
                protocol,
                ports,
                source_ports,
                *icmp_type,
                *icmp_code,
                &at,
                ".ports",
                ".source_ports",
                Some(via.clone()),
                errs,
            ));
        }
        map.entry(s.name.clone()).or_insert(all);
    }
    map
}

fn resolve_rule_services(
    spec: &super::document::RuleSpec,
    services: &HashMap<String, Vec<ServiceMatch>>,
    at: At<'_>,
    errs: &mut Errors,
) -> Vec<ServiceMatch> {
    let inline = spec.protocol.is_some()
        || spec.icmp_type.is_some()
        || spec.icmp_code.is_some()
        || !spec.source.ports.is_empty()
        || !spec.destination.ports.is_empty();
    if !spec.services.is_empty() {
        if inline {
            errs.push(
                at(".protocol"),
                "give either services or an inline protocol/ports, not both",
            );
        }
        let mut out = Vec::new();
        for (si, name) in spec.services.iter().enumerate() {
            match services.get(name) {
                Some(m) => out.extend(m.iter().cloned()),
                None => errs.push(
                    at(&format!(".services[{si}]")),
                    format!("unknown service {name:?}"),
                ),
            }
        }
        return out;
    }
    if !inline {
        return vec![ServiceMatch::any()];
    }
    let any = ProtoSpec::default();
    expand_entry(
        spec.protocol.as_ref().unwrap_or(&any),
        &spec.destination.ports,
        &spec.source.ports,
        spec.icmp_type,
        spec.icmp_code,
        at,
        ".destination.ports",
        ".source.ports",
        None,
        errs,
    )
}
