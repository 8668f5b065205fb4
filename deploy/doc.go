// Package deploy holds what an operator runs Causeway with, and the tests
// that keep it honest; it has no Go code of its own.
//
//   - ../Dockerfile: a static (CGO_ENABLED=0) binary on distroless, non-root,
//     no HEALTHCHECK. docker_test.go parses it and builds the binary with
//     its own build command (no container engine is needed).
//   - prometheus/: alert rules, checked with promtool (Debian package
//     prometheus; .ci/run installs it) and unit-tested with promtool's rule
//     tests.
//   - grafana/: a dashboard.
//   - helm/causeway: the Helm chart; kubernetes/causeway.yaml is what it
//     renders for kubernetes/example-values.yaml (make manifests).
//     helm_test.go lints it with the pinned helm (make tools), checks the
//     committed manifests are current, checks the objects an operator
//     relies on and that bad values are refused.
//
// observability_test.go starts two regions from that static binary and
// checks that every causeway_* metric a rule or panel names is on a running
// node's /metrics, so a renamed metric breaks the build, not the dashboard.
package deploy
