//! `rules.images`: allowed and denied regexes, requireDigest, forbiddenTags, and the
//! images exempt from all four.

use policy_core::Effect;
use policy_core::image::ImageRef;

use crate::util::{assert_clean, assert_denied, assert_undecided, messages, rules, with};

fn image(text: &str) -> policy_core::ContainerView {
    with(|v| v.image = Some(ImageRef::parse(text)))
}

#[test]
fn allowed_passes_an_image_matching_any_pattern() {
    let p = rules("images:\n  allowed: ['^registry\\.corp/', '^ghcr\\.io/corp/']\n");
    assert_clean(&p, &image("registry.corp/team/app:1.0"));
    assert_clean(&p, &image("ghcr.io/corp/tool@sha256:abc"));
}

#[test]
fn allowed_denies_any_other_image_naming_the_patterns() {
    let p = rules("images:\n  allowed: ['^registry\\.corp/', '^ghcr\\.io/corp/']\n");
    assert_denied(
        &p,
        &image("docker.io/evil/x:1"),
        "images.allowed",
        r#"image "docker.io/evil/x:1" does not match any allowed pattern (^registry\.corp/, ^ghcr\.io/corp/)"#,
    );
    // Patterns see the normalized name containerd uses.
    assert_denied(
        &p,
        &image("nginx"),
        "images.allowed",
        r#"image "docker.io/library/nginx:latest" does not match any allowed pattern (^registry\.corp/, ^ghcr\.io/corp/)"#,
    );
    // Regexes are unanchored unless written anchored.
    assert_denied(
        &p,
        &image("evil.io/registry.corp/app:1"),
        "images.allowed",
        r#"image "evil.io/registry.corp/app:1" does not match any allowed pattern (^registry\.corp/, ^ghcr\.io/corp/)"#,
    );
}

#[test]
fn denied_names_the_first_pattern_that_matches() {
    let p = rules("images:\n  denied: ['^docker\\.io/', 'miner', ':latest$']\n");
    assert_clean(&p, &image("registry.corp/app:1"));
    assert_denied(
        &p,
        &image("nginx"),
        "images.denied",
        r#"image "docker.io/library/nginx:latest" matches denied pattern ^docker\.io/"#,
    );
    assert_denied(
        &p,
        &image("quay.io/x/cryptominer:2"),
        "images.denied",
        r#"image "quay.io/x/cryptominer:2" matches denied pattern miner"#,
    );
}

#[test]
fn require_digest_wants_a_pinned_image() {
    let p = rules("images: {requireDigest: true}\n");
    assert_clean(&p, &image("registry.corp/app@sha256:0123"));
    assert_clean(&p, &image("registry.corp/app:1.2@sha256:0123"));
    assert_denied(
        &p,
        &image("registry.corp/app:1.2"),
        "images.digest",
        r#"image "registry.corp/app:1.2" is not pinned by digest (@sha256:...)"#,
    );
}

#[test]
fn forbidden_tags_count_a_bare_name_as_latest_and_ignore_pinned_images() {
    let p = rules("images: {forbiddenTags: [latest, dev]}\n");
    assert_clean(&p, &image("registry.corp/app:1.2"));
    assert_denied(
        &p,
        &image("registry.corp/app"),
        "images.tag",
        r#"image "registry.corp/app:latest" uses forbidden tag "latest""#,
    );
    assert_denied(
        &p,
        &image("registry.corp/app:dev"),
        "images.tag",
        r#"image "registry.corp/app:dev" uses forbidden tag "dev""#,
    );
    // A digest pins the content whatever the tag says.
    assert_clean(&p, &image("registry.corp/app:latest@sha256:0123"));
    // Tags compare exactly.
    assert_clean(&p, &image("registry.corp/app:Latest"));
}

#[test]
fn exempt_images_escape_all_four_checks_and_only_them() {
    let p = rules(
        "images:
  allowed: ['^registry\\.corp/']
  denied: [':debug$']
  requireDigest: true
  forbiddenTags: [latest]
  exempt: ['^registry\\.k8s\\.io/pause:']
privileged: {}
",
    );
    assert_clean(&p, &image("registry.k8s.io/pause:3.9"));
    // Exemption from images does not exempt from other rules.
    let mut privileged = image("registry.k8s.io/pause:3.9");
    privileged.security.privileged = Some(true);
    assert_denied(&p, &privileged, "privileged", "container is privileged");
    // Every check judges an image that is not exempt, each with its own message.
    let d = policy_core::evaluate(&p, &image("registry.k8s.io/other:latest"));
    assert_eq!(
        messages(&d),
        [
            (
                "images.allowed",
                r#"image "registry.k8s.io/other:latest" does not match any allowed pattern (^registry\.corp/)"#
            ),
            (
                "images.digest",
                r#"image "registry.k8s.io/other:latest" is not pinned by digest (@sha256:...)"#
            ),
            (
                "images.tag",
                r#"image "registry.k8s.io/other:latest" uses forbidden tag "latest""#
            ),
        ]
    );
    assert!(d.violations.iter().all(|v| v.effect == Effect::Enforce));
    let d = policy_core::evaluate(&p, &image("registry.corp/app:debug"));
    assert_eq!(
        messages(&d),
        [
            (
                "images.denied",
                r#"image "registry.corp/app:debug" matches denied pattern :debug$"#
            ),
            (
                "images.digest",
                r#"image "registry.corp/app:debug" is not pinned by digest (@sha256:...)"#
            ),
        ]
    );
}

#[test]
fn an_unknown_image_leaves_every_check_undecided_even_with_exemptions() {
    let p = rules(
        "images:
  allowed: ['^registry\\.corp/']
  denied: [':debug$']
  requireDigest: true
  forbiddenTags: [latest]
  exempt: ['.*']
",
    );
    assert_undecided(
        &p,
        &with(|v| v.image = None),
        &[
            ("images.allowed", "image"),
            ("images.denied", "image"),
            ("images.digest", "image"),
            ("images.tag", "image"),
        ],
    );
}
