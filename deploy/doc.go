// Package deploy holds no code: it is where the deployment files live
// (systemd/, kubernetes/, and the repository's Containerfile) and where
// their test runs. The test decodes every Kubernetes manifest strictly
// into the k8s.io/api types and runs systemd-analyze verify on the unit;
// it is a package of its own so that only it compiles k8s.io/api.
// See docs/deploying.md.
package deploy
