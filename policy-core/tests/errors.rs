//! Loading mistakes: every one is reported, with its file, line, column and field path, and a
//! message that says what is wrong.

use policy_core::{Policy, PolicyErrors};

use crate::util::{document, error_places, fixture, indent, load_err, policy_err};

/// Asserts the errors are exactly `expected` — `(line, path, message fragment)` — in any
/// order, and that each message contains its fragment.
#[track_caller]
fn assert_errors(errors: &PolicyErrors, expected: &[(usize, &str, &str)]) {
    let mut got: Vec<(usize, &str, &str)> = errors
        .0
        .iter()
        .map(|e| (e.location.line, e.path.as_str(), e.message.as_str()))
        .collect();
    got.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(
        got.iter().map(|(l, p, _)| (*l, *p)).collect::<Vec<_>>(),
        want.iter().map(|(l, p, _)| (*l, *p)).collect::<Vec<_>>(),
        "errors: {errors}"
    );
    for ((_, path, message), (_, _, fragment)) in got.iter().zip(&want) {
        assert!(
            message.contains(fragment),
            "{path}: {message:?} should contain {fragment:?}"
        );
    }
}

/// The errors of a one-document policy whose `spec.rules` is `rules`; the first rule's line
/// is line 7.
fn rule_errors(rules: &str) -> PolicyErrors {
    policy_err(&document("test", &format!("rules:\n{}", indent(rules, 2))))
}

#[test]
fn a_file_full_of_mistakes_reports_every_one_where_it_is() {
    let errors = load_err("errors/many-mistakes.yaml");
    assert_errors(
        &errors,
        &[
            // Document 1: one mistake per rule, all in one document.
            (
                12,
                "spec.rules.images.allowed[1]",
                r#"invalid regex "^ghcr\\.io/(corp|partners/": "#,
            ),
            (
                14,
                "spec.rules.privileged.effect",
                "unknown variant `block`, expected one of `enforce`, `audit`, `warn`, `disabled`",
            ),
            (
                16,
                "spec.rules.hostPorts.allowed[1]",
                r#"range "9100-9000" runs backwards"#,
            ),
            (
                16,
                "spec.rules.hostPorts.allowed[2]",
                "70000 is not a port (1-65535)",
            ),
            (
                20,
                "spec.rules.resources.maxLimits.memory",
                r#"invalid quantity "12XB": unknown suffix"#,
            ),
            (
                24,
                "spec.rules.users.runAsUser[1]",
                "min 5000 is greater than max 4000",
            ),
            (
                26,
                "spec.rules.capabilities.allowedAdd[1]",
                r#"unknown capability "CAP_FLY""#,
            ),
            (
                29,
                "spec.rules.volumeTypes.allowed[1]",
                r#"unknown volume type "hostpath"; expected one of hostPath, configMap"#,
            ),
            (
                30,
                "spec.rules.requireLabels",
                r#"unknown rule "requireLabels"; expected one of images, privileged"#,
            ),
            (
                33,
                "spec.rules.seccomp.allowed",
                r#"invalid type: string "RuntimeDefault", expected a list"#,
            ),
            (
                35,
                "spec.rules.readOnlyRootFilesystem.enabled",
                "unknown field `enabled`, expected `effect`",
            ),
            (
                39,
                "spec.rules.requiredLabels.labels[0].allowedRegex",
                r#"invalid regex "^(prod|staging$": "#,
            ),
            // Document 2: header mistakes, and a spec-level one that hides nothing.
            (
                41,
                "apiVersion",
                r#"unsupported apiVersion "nodeguard.io/v1"; expected "nodeguard.io/v1alpha1""#,
            ),
            (
                42,
                "kind",
                r#"unsupported kind "PodPolicy"; expected "NodePolicy""#,
            ),
            (44, "metadata.name", "policy name must not be empty"),
            (46, "spec.effect", "unknown variant `strict`"),
            (48, "spec.scope.namespace", "unknown field `namespace`"),
            (
                52,
                "spec.podSecurity.exemptions[0].controls[1]",
                r#"unknown control "hostUsers"; expected one of appArmor, capabilities"#,
            ),
            // Document 3: a Kubernetes habit (metadata.namespace) hides nothing either.
            (
                58,
                "metadata.namespace",
                "unknown field `namespace`, expected one of `name`, `labels`, `annotations`",
            ),
            (
                63,
                "spec.rules.hostPath.allowed[0].pathPrefix",
                r#"path prefix "var/log" must be absolute"#,
            ),
            (
                57,
                "metadata.name",
                r#"policy name "workloads" is used by another document"#,
            ),
            // Document 4: valid, but its name is taken too.
            (
                68,
                "metadata.name",
                r#"policy name "workloads" is used by another document"#,
            ),
        ],
    );
    assert!(
        errors
            .0
            .iter()
            .all(|e| e.source_name == "errors/many-mistakes.yaml")
    );
}

#[test]
fn errors_carry_the_column_and_display_as_file_line_column_path_message() {
    let errors = load_err("errors/many-mistakes.yaml");
    let find = |path: &str| {
        errors
            .0
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no error at {path}: {errors}"))
    };
    let regex = find("spec.rules.images.allowed[1]");
    assert_eq!((regex.location.line, regex.location.column), (12, 11));
    let port = find("spec.rules.hostPorts.allowed[2]");
    assert_eq!((port.location.line, port.location.column), (16, 36));
    assert_eq!(
        port.to_string(),
        "errors/many-mistakes.yaml:16:36: spec.rules.hostPorts.allowed[2]: 70000 is not a port (1-65535)"
    );
    let text = errors.to_string();
    assert!(
        text.starts_with(&format!("{} errors in policy\n  ", errors.0.len())),
        "{text}"
    );
    assert_eq!(text.lines().count(), errors.0.len() + 1);
}

#[test]
fn a_bad_regex_error_names_the_regex_and_why() {
    let errors = rule_errors("images:\n  denied: ['^docker\\.io/', 'a(b', '[z-a]']\n");
    assert_eq!(
        error_places(&errors),
        [
            ("inline.yaml", 8, "spec.rules.images.denied[1]"),
            ("inline.yaml", 8, "spec.rules.images.denied[2]"),
        ]
    );
    assert_eq!(
        errors.0[0].message,
        r#"invalid regex "a(b": unclosed group"#
    );
    assert_eq!(
        errors.0[1].message,
        r#"invalid regex "[z-a]": invalid character class range, the start must be <= the end"#
    );
}

#[test]
fn a_regex_too_large_to_compile_is_refused_with_the_limit() {
    let errors =
        rule_errors("requiredLabels:\n  labels: [{key: env, allowedRegex: 'a{99999}{99999}'}]\n");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(
        errors.0[0].path,
        "spec.rules.requiredLabels.labels[0].allowedRegex"
    );
    assert!(
        errors.0[0]
            .message
            .starts_with(r#"invalid regex "a{99999}{99999}": "#),
        "{errors}"
    );
    assert!(errors.0[0].message.contains("size limit"), "{errors}");
}

#[test]
fn invalid_yaml_in_one_file_does_not_hide_mistakes_in_another() {
    let broken = fixture("errors/invalid-yaml.yaml");
    let other = document("other", "rules:\n  hostPorts: {allowed: [0]}\n");
    let errors = Policy::parse_many([("invalid-yaml.yaml", broken.as_str()), ("b.yaml", &other)])
        .unwrap_err();
    assert_eq!(
        error_places(&errors),
        [
            ("invalid-yaml.yaml", 9, ""),
            ("b.yaml", 7, "spec.rules.hostPorts.allowed[0]"),
        ]
    );
    assert!(
        errors.0[0].message.starts_with("invalid YAML: "),
        "{errors}"
    );
    assert_eq!(errors.0[1].message, "0 is not a port (1-65535)");
}

#[test]
fn yaml_syntax_errors_are_reported_with_their_place() {
    for (text, line, fragment) in [
        ("a: [1, 2\nb: 3\n", 2, "invalid YAML: "),
        (
            "apiVersion: x\nkind: y\nkind: z\n",
            3,
            "invalid YAML: duplicate key `kind`",
        ),
        ("a: *nothing\n", 1, "invalid YAML: "),
    ] {
        let errors = policy_err(text);
        assert_eq!(errors.0.len(), 1, "{text:?}: {errors}");
        assert_eq!(errors.0[0].location.line, line, "{text:?}: {errors}");
        assert_eq!(errors.0[0].path, "");
        assert!(
            errors.0[0].message.starts_with(fragment),
            "{text:?}: {errors}"
        );
    }
}

#[test]
fn an_empty_file_has_no_policy() {
    for text in ["", "# nothing\n", "---\n...\n"] {
        let errors = policy_err(text);
        assert_eq!(error_places(&errors), [("inline.yaml", 1, "")], "{text:?}");
        assert_eq!(errors.0[0].message, "no NodePolicy document found");
    }
}

#[test]
fn duplicate_names_across_files_are_reported_in_the_second_file() {
    let a = document("shared", "rules: {privileged: {}}\n");
    let b = format!(
        "{}---\n{}",
        document("unique", "rules: {privileged: {}}\n"),
        document("shared", "rules: {procMount: {}}\n")
    );
    let errors = Policy::parse_many([("a.yaml", a.as_str()), ("b.yaml", &b)]).unwrap_err();
    assert_eq!(error_places(&errors), [("b.yaml", 11, "metadata.name")]);
    assert_eq!(
        errors.0[0].message,
        r#"policy name "shared" is used by another document (first at a.yaml:4:3)"#,
        "the first definition is named"
    );
    // Names are compared after trimming.
    let c = document("' shared '", "rules: {privileged: {}}\n");
    let errors = Policy::parse_many([("a.yaml", a.as_str()), ("c.yaml", &c)]).unwrap_err();
    assert_eq!(error_places(&errors), [("c.yaml", 4, "metadata.name")]);
}

#[test]
fn regression_duplicate_name_reported_when_the_first_holder_has_mistakes() {
    let text = format!(
        "{}---\n{}",
        document("same", "rules: {privileged: {effect: block}}\n"),
        document("same", "rules: {procMount: {}}\n")
    );
    let errors = policy_err(&text);
    assert_eq!(
        error_places(&errors),
        [
            ("inline.yaml", 6, "spec.rules.privileged.effect"),
            ("inline.yaml", 11, "metadata.name"),
        ]
    );
}

#[test]
fn regression_unknown_field_path_is_not_doubled() {
    let errors = rule_errors("hostPath:\n  allowed:\n    - {pathPrefix: /var, readonly: true}\n");
    assert_eq!(
        error_places(&errors),
        [("inline.yaml", 9, "spec.rules.hostPath.allowed[0].readonly")]
    );
    assert_eq!(
        errors.0[0].message,
        "unknown field `readonly`, expected `pathPrefix` or `readOnly`"
    );
    let errors = policy_err(&format!(
        "extra: 1\n{}",
        document("a", "rules: {privileged: {}}\n")
    ));
    assert_eq!(error_places(&errors), [("inline.yaml", 1, "extra")]);
    let errors = policy_err(&document("a", "rule: {privileged: {}}\n"));
    assert_eq!(error_places(&errors), [("inline.yaml", 6, "spec.rule")]);
}

#[test]
fn regression_top_level_and_spec_level_mistakes_do_not_hide_rule_mistakes() {
    let rules = "rules:\n  images: {allowed: ['(']}\n";
    // An unknown top-level field.
    let errors = policy_err(&format!("status: {{}}\n{}", document("a", rules)));
    assert_eq!(
        error_places(&errors),
        [
            ("inline.yaml", 1, "status"),
            ("inline.yaml", 8, "spec.rules.images.allowed[0]"),
        ]
    );
    // A bad spec-level effect, with a misspelt sibling (serde stops at the first).
    let errors = policy_err(&document("a", &format!("effect: block\n{rules}")));
    assert_eq!(
        error_places(&errors),
        [
            ("inline.yaml", 6, "spec.effect"),
            ("inline.yaml", 8, "spec.rules.images.allowed[0]"),
        ]
    );
    // A misspelt spec part next to good ones: no spurious "policy has no rules".
    let errors = policy_err(&document("a", "rule: {}\n"));
    assert_eq!(error_places(&errors), [("inline.yaml", 6, "spec.rule")]);
}

#[test]
fn header_mistakes_are_each_reported() {
    let errors =
        policy_err("kind: NodePolicy\nmetadata: {name: a}\nspec: {rules: {privileged: {}}}\n");
    assert_eq!(error_places(&errors), [("inline.yaml", 1, "")]);
    assert_eq!(errors.0[0].message, "missing field `apiVersion`");

    let errors = policy_err("apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {}\n");
    assert_eq!(errors.0[0].path, "metadata");
    assert_eq!(errors.0[0].message, "missing field `name`");

    let errors =
        policy_err("apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: a}\n");
    assert_eq!(error_places(&errors), [("inline.yaml", 1, "spec")]);
    assert_eq!(
        errors.0[0].message,
        "policy has no rules: set spec.podSecurity, spec.rules, or both"
    );

    let errors = policy_err(&document("'  '", "rules: {privileged: {}}\n"));
    assert_eq!(error_places(&errors), [("inline.yaml", 4, "metadata.name")]);

    let errors = policy_err(&document("a", "rules: []\n"));
    assert_eq!(error_places(&errors), [("inline.yaml", 6, "spec.rules")]);
    assert_eq!(
        errors.0[0].message,
        "invalid type: list, expected a mapping"
    );
}

/// One mistaken rule: the rule text, then the line, path and message fragment expected.
const RULE_MISTAKES: &[(&str, usize, &str, &str)] = &[
    (
        "images: {}\n",
        7,
        "spec.rules.images",
        "rule checks nothing: set allowed, denied, requireDigest or forbiddenTags",
    ),
    (
        "images: {forbiddenTags: ['v1:latest']}\n",
        7,
        "spec.rules.images.forbiddenTags[0]",
        r#""v1:latest" is not a tag"#,
    ),
    (
        "images: {requireDigest: 'yes'}\n",
        7,
        "spec.rules.images.requireDigest",
        r#"invalid type: string "yes", expected a boolean"#,
    ),
    (
        "images:\n  exempt: ['*']\n  requireDigest: true\n",
        8,
        "spec.rules.images.exempt[0]",
        r#"invalid regex "*": "#,
    ),
    (
        "privileged: {effect: Enforce}\n",
        7,
        "spec.rules.privileged.effect",
        "unknown variant `Enforce`",
    ),
    (
        "privileged: true\n",
        7,
        "spec.rules.privileged",
        "invalid type: boolean `true`, expected a mapping",
    ),
    (
        "capabilities: {requiredDrop: [ALL, NET_FLY]}\n",
        7,
        "spec.rules.capabilities.requiredDrop[1]",
        r#"unknown capability "NET_FLY""#,
    ),
    (
        "capabilities: {allowedAdd: [ALL]}\n",
        7,
        "spec.rules.capabilities.allowedAdd[0]",
        r#"unknown capability "ALL""#,
    ),
    (
        "resources: {maxLimits: {cpu: lots}}\n",
        7,
        "spec.rules.resources.maxLimits.cpu",
        r#"invalid quantity "lots": "#,
    ),
    (
        "resources: {maxLimits: {memory: -1Gi}}\n",
        7,
        "spec.rules.resources.maxLimits.memory",
        "negative quantities are not allowed",
    ),
    (
        "resources: {maxLimits: {memory: true}}\n",
        7,
        "spec.rules.resources.maxLimits.memory",
        "expected a quantity such as 512Mi or 2Gi",
    ),
    (
        "resources: {maxLimitRequestRatio: {cpu: 0.5}}\n",
        7,
        "spec.rules.resources.maxLimitRequestRatio.cpu",
        "ratio must be a number of at least 1, not 0.5",
    ),
    (
        "resources: {requireLimits: [gpu]}\n",
        7,
        "spec.rules.resources.requireLimits[0]",
        "unknown variant `gpu`, expected `cpu` or `memory`",
    ),
    (
        "hostNamespaces: {allowed: [user]}\n",
        7,
        "spec.rules.hostNamespaces.allowed[0]",
        "unknown variant `user`",
    ),
    (
        "hostPorts: {allowed: ['80-']}\n",
        7,
        "spec.rules.hostPorts.allowed[0]",
        r#""" is not a port (1-65535)"#,
    ),
    (
        "hostPorts: {allowed: [0]}\n",
        7,
        "spec.rules.hostPorts.allowed[0]",
        "0 is not a port (1-65535)",
    ),
    (
        "hostPorts: {allowed: [true]}\n",
        7,
        "spec.rules.hostPorts.allowed[0]",
        r#"expected a port or a range such as "9000-9100", not true"#,
    ),
    (
        "hostPorts: {allowed: [http]}\n",
        7,
        "spec.rules.hostPorts.allowed[0]",
        r#""http" is not a port (1-65535)"#,
    ),
    (
        "users: {}\n",
        7,
        "spec.rules.users",
        "rule checks nothing: set runAsUser, runAsGroup or supplementalGroups",
    ),
    (
        "users: {runAsGroup: []}\n",
        7,
        "spec.rules.users.runAsGroup",
        "list at least one range",
    ),
    (
        "users: {supplementalGroups: [{min: -1, max: 5}]}\n",
        7,
        "spec.rules.users.supplementalGroups[0].min",
        "invalid value: integer `-1`, expected a whole number (0 to 4294967295)",
    ),
    (
        "users: {runAsUser: [{min: 1}]}\n",
        7,
        "spec.rules.users.runAsUser[0]",
        "missing field `max`",
    ),
    (
        "seccomp: {allowed: []}\n",
        7,
        "spec.rules.seccomp.allowed",
        "allow at least one profile kind",
    ),
    (
        "appArmor: {allowed: [runtime/default]}\n",
        7,
        "spec.rules.appArmor.allowed[0]",
        "unknown variant `runtime/default`, expected one of `RuntimeDefault`, `Localhost`, `Unconfined`",
    ),
    (
        "appArmor: {allowedLocalhostProfiles: ['']}\n",
        7,
        "spec.rules.appArmor.allowedLocalhostProfiles[0]",
        "empty pattern",
    ),
    (
        "seLinux: {}\n",
        7,
        "spec.rules.seLinux",
        "rule checks nothing: set allowedTypes, allowedUsers, allowedRoles or allowedLevels",
    ),
    (
        "sysctls: {}\n",
        7,
        "spec.rules.sysctls",
        "rule checks nothing: set allowed, forbidden or both",
    ),
    (
        "volumeTypes: {}\n",
        7,
        "spec.rules.volumeTypes",
        "missing field `allowed`",
    ),
    (
        "volumeTypes: {allowed: [gitRepo]}\n",
        7,
        "spec.rules.volumeTypes.allowed[0]",
        r#"unknown volume type "gitRepo""#,
    ),
    (
        "requiredLabels: {labels: []}\n",
        7,
        "spec.rules.requiredLabels.labels",
        "list at least one label",
    ),
    (
        "requiredLabels:\n  labels:\n    - key: team\n    - key: ''\n",
        10,
        "spec.rules.requiredLabels.labels[1].key",
        "label key must not be empty",
    ),
    (
        "devices: {allowed: [/dev/fuse, '']}\n",
        7,
        "spec.rules.devices.allowed[1]",
        "empty pattern",
    ),
];

#[test]
fn each_rule_mistake_is_reported_at_its_field() {
    for (rules, line, path, fragment) in RULE_MISTAKES {
        let errors = rule_errors(rules);
        assert_eq!(
            error_places(&errors),
            [("inline.yaml", *line, *path)],
            "{rules}"
        );
        assert!(
            errors.0[0].message.contains(fragment),
            "{rules}: {:?} should contain {fragment:?}",
            errors.0[0].message
        );
    }
}

#[test]
fn mistakes_in_several_rules_of_one_document_are_all_reported() {
    let text = RULE_MISTAKES
        .iter()
        .map(|(r, ..)| *r)
        .filter(|r| {
            r.starts_with("privileged: {effect")
                || r.starts_with("users: {runAsGroup")
                || r.starts_with("volumeTypes: {allowed")
                || r.starts_with("devices")
        })
        .collect::<String>();
    let errors = rule_errors(&text);
    let mut paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "spec.rules.devices.allowed[1]",
            "spec.rules.privileged.effect",
            "spec.rules.users.runAsGroup",
            "spec.rules.volumeTypes.allowed[0]",
        ]
    );
}

#[test]
fn scope_mistakes_are_reported_at_their_field() {
    let spec = "scope:
  namespaces: [prod, '']
  exemptImages: ['^registry\\.k8s\\.io/', '(']
  podSelector:
    matchExpressions:
      - {key: app, operator: In}
      - {key: tier, operator: Exists, values: [front]}
      - {key: '', operator: DoesNotExist}
rules:
  privileged: {}
";
    let errors = policy_err(&document("scoped", spec));
    assert_errors(
        &errors,
        &[
            (7, "spec.scope.namespaces[1]", "empty pattern"),
            (8, "spec.scope.exemptImages[1]", r#"invalid regex "(": "#),
            (
                11,
                "spec.scope.podSelector.matchExpressions[0]",
                "operator In needs values",
            ),
            (
                12,
                "spec.scope.podSelector.matchExpressions[1]",
                "operator Exists takes no values",
            ),
            (
                13,
                "spec.scope.podSelector.matchExpressions[2].key",
                "label key must not be empty",
            ),
        ],
    );
}

#[test]
fn pod_security_mistakes_are_reported_at_their_field() {
    let spec = "podSecurity:
  level: strict
";
    let errors = policy_err(&document("pss", spec));
    assert_eq!(
        error_places(&errors),
        [("inline.yaml", 7, "spec.podSecurity.level")]
    );
    assert!(
        errors.0[0]
            .message
            .contains("unknown variant `strict`, expected `baseline` or `restricted`")
    );

    let spec = "podSecurity:
  level: baseline
  exemptions:
    - controls: []
    - controls: [seccomp]
      images: ['(']
    - controls: [hostNetwork]
";
    let errors = policy_err(&document("pss", spec));
    assert_errors(
        &errors,
        &[
            (
                9,
                "spec.podSecurity.exemptions[0].controls",
                "name at least one control",
            ),
            (
                11,
                "spec.podSecurity.exemptions[1].images[0]",
                r#"invalid regex "(""#,
            ),
            (
                12,
                "spec.podSecurity.exemptions[2].controls[0]",
                r#"unknown control "hostNetwork""#,
            ),
        ],
    );
}

#[test]
fn a_failed_load_returns_no_policy_at_all() {
    // One good document and one bad: nothing is loaded.
    let text = format!(
        "{}---\n{}",
        document("good", "rules: {privileged: {}}\n"),
        document("bad", "rules: {privileged: {effect: nope}}\n")
    );
    assert!(Policy::parse("x.yaml", &text).is_err());
}

#[test]
fn lines_are_counted_as_yaml_counts_them_with_crlf_or_lone_cr() {
    // Found by the `parse_never_panics_on_mutated_valid_policies` property: a lone CR is a
    // YAML line break, so errors after one are a line further on than `str::lines` counts.
    let lf = rule_errors("privileged:\n  effect: block\n");
    for ending in ["\r\n", "\r"] {
        let text =
            document("test", "rules:\n  privileged:\n    effect: block\n").replace('\n', ending);
        let errors = policy_err(&text);
        assert_eq!(
            error_places(&errors),
            error_places(&lf),
            "line ending {ending:?}"
        );
    }
}

/// A policy document with a 1 MiB anchored annotation copied into `copies` more annotations
/// (`copies` MiB expanded; nodeguard does not read annotations).
fn aliasing_policy(name: &str, copies: usize) -> String {
    let mut text = format!(
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata:\n  name: {name}\n  annotations:\n    big: &big '{}'\n",
        "x".repeat(1 << 20)
    );
    for i in 0..copies {
        text.push_str(&format!("    copy{i}: *big\n"));
    }
    text.push_str("spec:\n  rules:\n    privileged: {}\n");
    text
}

#[test]
fn an_alias_bomb_is_an_error_at_the_alias_not_an_allocation() {
    let text = aliasing_policy("bomb", 1_000);
    let errors = Policy::parse("bomb.yaml", &text).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert!(
        e.message.contains("expands to more than 48 MiB"),
        "{errors}"
    );
    // At the first copy that would cross the bound: about the 46th.
    let line = text.lines().nth(e.location.line - 1).unwrap();
    assert!(line.ends_with(": *big"), "{errors}");
    assert!((40..50).contains(&(e.location.line - 7)), "{errors}");
    assert!(
        errors
            .to_string()
            .contains(&format!("bomb.yaml:{}:", e.location.line)),
        "{errors}"
    );
}

#[test]
fn policy_files_share_one_expansion_budget() {
    // 11 MiB each (the anchored MiB, its kept copy, 9 copies) is fine alone and four
    // together, but five together are over 48 MiB.
    let texts: Vec<(String, String)> = (0..5)
        .map(|i| (format!("p{i}.yaml"), aliasing_policy(&format!("p{i}"), 9)))
        .collect();
    if let Err(e) = Policy::parse("p0.yaml", &texts[0].1) {
        panic!("{e}");
    }
    let errors =
        Policy::parse_many(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].source_name, "p4.yaml", "{errors}");
    assert!(
        errors.0[0].message.contains("more than 48 MiB together"),
        "{errors}"
    );
}

#[test]
fn messages_speak_yaml_not_rust() {
    // Every kind of wrong type a rule can meet, in one policy.
    let errors = rule_errors(
        "privileged: true\nimages: {allowed: 5, forbiddenTags: {a: 1}}\nusers: {runAsUser: {ranges: [{min: a, max: 5}]}}\nhostPorts: {allowed: yes}\n",
    );
    let text = errors.to_string();
    for rust in [
        "struct ", "Raw", "u32", "u16", "i64", "usize", "sequence", " map,",
    ] {
        assert!(!text.contains(rust), "{rust:?} in:\n{text}");
    }
    assert!(
        text.contains("expected a mapping") && text.contains("expected a list"),
        "{text}"
    );
}

#[test]
fn independent_pod_security_mistakes_are_reported_in_one_pass() {
    let errors = policy_err(&document(
        "pss",
        "podSecurity:\n  level: strict\n  effect: enforced\n  exemptions:\n    - controls: [privilegd, hostNamespace]\n    - controls: [seccomp]\n      images: ['(']\n  extra: 1\n",
    ));
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.podSecurity.level",
            "spec.podSecurity.effect",
            "spec.podSecurity.exemptions[0].controls[0]",
            "spec.podSecurity.exemptions[0].controls[1]",
            "spec.podSecurity.exemptions[1].images[0]",
            "spec.podSecurity.extra",
        ],
        "{errors}"
    );
    // Without a level at all, that is said too.
    let errors = policy_err(&document("pss", "podSecurity:\n  effect: audit\n"));
    assert!(
        errors.to_string().contains("missing field `level`"),
        "{errors}"
    );
}

#[test]
fn unanchored_image_patterns_are_noted_with_the_anchored_form() {
    let policy = crate::util::policy(&document(
        "images",
        "scope: {exemptImages: ['debug/']}\nrules:\n  images: {allowed: ['registry\\.corp/', '^ok/', ':pinned$']}\n",
    ));
    let notes: Vec<String> = policy.notes().iter().map(ToString::to_string).collect();
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(
        notes[0].contains("spec.scope.exemptImages[0]: image pattern \"debug/\" is not anchored"),
        "{notes:#?}"
    );
    assert!(
        notes[1].contains(r#"spec.rules.images.allowed[0]: image pattern "registry\\.corp/" is not anchored: it also matches "evil.example/registry\\.corp/"; write "^registry\\.corp/""#),
        "{notes:#?}"
    );
}

#[test]
fn a_containerd_namespace_that_cannot_be_one_is_reported_at_its_place() {
    let errors = policy_err(&document(
        "test",
        "scope:\n  containerdNamespaces:\n    - moby\n    - 'k8s io'\n  excludedContainerdNamespaces: [buildkit, '', a/b]\nrules:\n  privileged: {}\n",
    ));
    assert_errors(
        &errors,
        &[
            (
                9,
                "spec.scope.containerdNamespaces[1]",
                "\"k8s io\" is not a containerd namespace: ' ' is not allowed",
            ),
            (
                10,
                "spec.scope.excludedContainerdNamespaces[1]",
                "empty pattern",
            ),
            (
                10,
                "spec.scope.excludedContainerdNamespaces[2]",
                "\"a/b\" is not a containerd namespace",
            ),
        ],
    );
}
