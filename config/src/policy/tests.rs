use super::*;

fn doc(json: &str) -> PolicyDocument {
    PolicyDocument::from_json_slice(json.as_bytes()).unwrap()
}

fn errors(json: &str) -> ValidationErrors {
    doc(json).validate_standalone().unwrap_err()
}

#[test]
fn example_policy_validates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/policy.example.json");
    let d = PolicyDocument::from_path(Path::new(path)).unwrap();
    let v = d.validate_standalone().unwrap();
    assert!(v.rules.len() >= 5);
    // Categories come first: the emergency rule is evaluated before application rules.
    assert_eq!(v.rules[0].category, Category::Emergency);
    let back = PolicyDocument::from_json_slice(&d.to_json_vec()).unwrap();
    assert_eq!(back, d);
}

#[test]
fn yaml_and_json_agree() {
    let y = "generation: 3\ndefault_action: drop\nrules:\n  - id: 1\n    action: allow\n    protocol: tcp\n    destination: {ports: [22, \"80-90\"]}\n";
    let d = PolicyDocument::from_yaml_str(y).unwrap();
    let j = doc(
        r#"{"generation":3,"default_action":"drop","rules":[{"id":1,"action":"allow","protocol":"tcp","destination":{"ports":[22,"80-90"]}}]}"#,
    );
    assert_eq!(d, j);
    let v = d.validate_standalone().unwrap();
    assert_eq!(v.rules[0].services.len(), 2);
    assert_eq!(v.rules[0].services[1].dport, PortRange { lo: 80, hi: 90 });
}

#[test]
fn port_errors_name_the_path() {
    let e = errors(
        r#"{"generation":1,"rules":[{"id":1,"action":"allow"},{"id":2,"action":"allow"},{"id":3,"action":"allow"},
            {"id":4,"action":"drop","protocol":"tcp","destination":{"ports":[70000,"5-1","x"]}}]}"#,
    );
    assert_eq!(
        e.0[0].to_string(),
        "rules[3].destination.ports[0]: port 70000 is out of range 0..=65535"
    );
    assert!(e.has_path("rules[3].destination.ports[1]"));
    assert!(e.has_path("rules[3].destination.ports[2]"));
}

#[test]
fn reports_every_kind_of_error() {
    let e = errors(
        r#"{"generation":1,
            "groups":[{"name":"a","groups":["b"]},{"name":"b","groups":["a"]},
                      {"name":"c","addresses":["10.0.0.0/40"],"groups":["nope"]}],
            "services":[{"name":"s","entries":[{"protocol":"icmp","ports":[1]}]}],
            "rules":[{"id":1,"action":"allow","source":{"groups":["zzz"]}},
                     {"id":1,"action":"drop","services":["s2"]},
                     {"id":-4,"action":"drop","vlan":5000,"vni":16777216,"protocol":"bogus"}]}"#,
    );
    let paths: Vec<&str> = e.0.iter().map(|x| x.path.as_str()).collect();
    for p in [
        "groups[1].groups[0]",
        "groups[2].addresses[0]",
        "groups[2].groups[0]",
        "services[0].entries[0].ports",
        "rules[0].source.groups[0]",
        "rules[1].id",
        "rules[1].services[0]",
        "rules[2].id",
        "rules[2].vlan",
        "rules[2].vni",
        "rules[2].protocol",
    ] {
        assert!(paths.contains(&p), "missing {p} in {paths:?}");
    }
    let cyc = e.0.iter().find(|x| x.reason.contains("cyclic")).unwrap();
    assert!(cyc.reason.contains("a -> b -> a"), "{cyc}");
}

#[test]
fn stale_generation_is_rejected() {
    let d = doc(r#"{"generation":5,"rules":[]}"#);
    let e = d.validate_against(Some(5)).unwrap_err();
    assert_eq!(e.0[0].path, "generation");
    assert!(e.0[0].reason.contains("stale"));
    assert!(d.validate_against(Some(4)).is_ok());
    assert!(d.validate_against(None).is_ok());
}

#[test]
fn groups_nest_and_select_by_tags() {
    let d = doc(r#"{"generation":1,
            "inventory":[{"name":"w1","addresses":["10.0.0.1"],"tags":["web","prod"]},
                         {"name":"w2","addresses":["10.0.0.2"],"tags":["web","dev"]}],
            "groups":[{"name":"prodweb","match_tags":["web","prod"]},
                      {"name":"all","groups":["prodweb"],"addresses":["2001:db8::/64"]}],
            "rules":[{"id":7,"action":"allow","destination":{"groups":["all"]}}]}"#);
    let v = d.validate_standalone().unwrap();
    let dst = &v.rules[0].destination;
    assert_eq!(dst.entries.len(), 2);
    let hit = dst.lookup(Family::V4, 0x0a00_0001).unwrap().unwrap();
    assert_eq!(
        hit.via.as_deref(),
        Some("group all > group prodweb (tags web,prod) > workload w1")
    );
    assert!(dst.lookup(Family::V4, 0x0a00_0002).is_none());

    // A separately published inventory update moves w2 into prod.
    let mut inv = Inventory::new();
    inv.merge(&InventoryDocument {
        workloads: vec![Workload {
            name: "w2".into(),
            addresses: vec!["10.0.0.2".into()],
            tags: vec!["web".into(), "prod".into()],
        }],
        ..Default::default()
    });
    let v = d
        .validate(&ValidateOptions {
            current_generation: None,
            inventory: Some(&inv),
        })
        .unwrap();
    assert!(v.rules[0]
        .destination
        .lookup(Family::V4, 0x0a00_0002)
        .is_some());
}

#[test]
fn negation_and_disabled() {
    let d = doc(r#"{"generation":1,"rules":[
            {"id":1,"action":"drop","source":{"addresses":["10.0.0.0/8"],"negate":true}},
            {"id":2,"action":"drop","disabled":true}]}"#);
    let v = d.validate_standalone().unwrap();
    assert_eq!(v.rules.len(), 1);
    assert_eq!(v.disabled, vec![RuleId(2)]);
    let src = &v.rules[0].source;
    assert!(src.lookup(Family::V4, 0x0a01_0101).is_none());
    assert!(src.lookup(Family::V4, 0x0b01_0101).is_some());
    assert!(src.lookup(Family::V6, 1).is_some());
    assert_eq!(src.effective().len(), 3);
}

#[test]
fn icmp_type_code_map_to_port_fields() {
    let d = doc(
        r#"{"generation":1,"rules":[{"id":1,"action":"allow","protocol":"icmp","icmp_type":8,"icmp_code":0}]}"#,
    );
    let v = d.validate_standalone().unwrap();
    let s = &v.rules[0].services[0];
    assert_eq!(
        (s.proto, s.sport, s.dport),
        (Some(1), PortRange::single(8), PortRange::single(0))
    );
    assert!(errors(
        r#"{"generation":1,"rules":[{"id":1,"action":"allow","protocol":"tcp","icmp_type":8}]}"#
    )
    .has_path("rules[0].icmp_type"));
}

#[test]
fn unknown_fields_are_refused() {
    assert!(PolicyDocument::from_json_slice(br#"{"generation":1,"rulez":[]}"#).is_err());
}

/// The JSON Schema names exactly the fields the types accept (so the two cannot drift).
#[test]
fn schema_matches_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/policy.schema.json");
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    let fields = |v: serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    // Fully populated values serialise every field.
    let rule = RuleSpec {
        id: 1,
        name: Some("n".into()),
        source: EndpointSpec {
            addresses: vec!["1.2.3.4".into()],
            groups: vec!["g".into()],
            negate: true,
            ports: vec![PortSpec::Number(1)],
        },
        services: vec!["s".into()],
        protocol: Some(ProtoSpec::Name("tcp".into())),
        icmp_type: Some(1),
        icmp_code: Some(1),
        vlan: Some(1),
        vni: Some(1),
        log: true,
        disabled: true,
        monitor: true,
        ..Default::default()
    };
    let rule_json = serde_json::to_value(&rule).unwrap();
    let defs = &schema["$defs"];
    assert_eq!(keys(&defs["rule"]), fields(rule_json.clone()));
    assert_eq!(keys(&defs["endpoint"]), fields(rule_json["source"].clone()));
    let group = GroupSpec {
        name: "g".into(),
        addresses: vec!["a".into()],
        groups: vec!["b".into()],
        match_tags: vec!["t".into()],
    };
    assert_eq!(
        keys(&defs["group"]),
        fields(serde_json::to_value(&group).unwrap())
    );
    let entry = ServiceEntry {
        protocol: ProtoSpec::Number(6),
        ports: vec![PortSpec::Number(1)],
        source_ports: vec![PortSpec::Number(1)],
        icmp_type: Some(1),
        icmp_code: Some(1),
    };
    assert_eq!(
        keys(&defs["service_entry"]),
        fields(serde_json::to_value(&entry).unwrap())
    );
    let doc = PolicyDocument {
        generation: 1,
        groups: vec![group],
        services: vec![ServiceSpec {
            name: "s".into(),
            entries: vec![entry],
        }],
        inventory: vec![Workload {
            name: "w".into(),
            addresses: vec![],
            tags: vec![],
        }],
        rules: vec![rule],
        ..Default::default()
    };
    assert_eq!(keys(&schema), fields(serde_json::to_value(&doc).unwrap()));
    assert_eq!(keys(&defs["workload"]), vec!["addresses", "name", "tags"]);
}

#[test]
fn ports_and_protocols_are_numbers_or_text_in_json_and_yaml() {
    let j = doc(
        r#"{"generation":1,"rules":[{"id":1,"action":"allow","protocol":6,
            "destination":{"ports":[443,"8000-8080"]}},
            {"id":2,"action":"drop","protocol":"udp"}]}"#,
    );
    assert_eq!(j.rules[0].protocol, Some(ProtoSpec::Number(6)));
    assert_eq!(
        j.rules[0].destination.ports,
        vec![PortSpec::Number(443), PortSpec::Text("8000-8080".into())]
    );
    assert_eq!(j.rules[1].protocol, Some(ProtoSpec::Name("udp".into())));
    let y = PolicyDocument::from_yaml_str(
        "generation: 1\nrules:\n  - {id: 1, action: allow, protocol: 6, destination: {ports: [443, \"8000-8080\"]}}\n  - {id: 2, action: drop, protocol: udp}\n",
    )
    .unwrap();
    assert_eq!(y, j);
    // Neither a number nor a string: serde names what it expected, with line and column.
    for (bad, expected) in [
        (
            r#"{"generation":1,"rules":[{"id":1,"action":"allow","protocol":true}]}"#,
            "a protocol name or number",
        ),
        (
            r#"{"generation":1,"rules":[{"id":1,"action":"allow","protocol":"tcp","destination":{"ports":[[80]]}}]}"#,
            "a port number or a \"lo-hi\" range",
        ),
        (
            r#"{"generation":1,"rules":[{"id":1,"action":"allow","protocol":18446744073709551615}]}"#,
            "a protocol name or number",
        ),
    ] {
        let e = PolicyDocument::from_json_slice(bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected) && e.contains("column"), "{e}");
    }
    // An out-of-range port still parses and is validation's to refuse, with its path.
    let e = errors(
        r#"{"generation":1,"rules":[{"id":1,"action":"allow","protocol":"tcp","destination":{"ports":[70000]}}]}"#,
    );
    assert!(e.has_path("rules[0].destination.ports[0]"), "{e}");
}
