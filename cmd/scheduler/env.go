package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/leasehold/leasehold/internal/flagenv"
)

// envPrefix: flag --some-name is also $LEASEHOLD_SOME_NAME (docs/deploying.md).
const envPrefix = "LEASEHOLD"

// etcdctlEnv: etcdctl's own variables, read when the LEASEHOLD_ one is
// unset, so that an environment already set up for etcdctl works as is.
var etcdctlEnv = map[string][]string{
	"endpoints": {"ETCDCTL_ENDPOINTS"},
	"cacert":    {"ETCDCTL_CACERT"},
	"cert":      {"ETCDCTL_CERT"},
	"key":       {"ETCDCTL_KEY"},
	"user":      {"ETCDCTL_USER"},
	"password":  {"ETCDCTL_PASSWORD"},
}

// applyEnv sets the flags the command line left unset from the
// environment.
func applyEnv(fs *flag.FlagSet, prefix string, aliases map[string][]string) error {
	return flagenv.Apply(fs, prefix, aliases, os.LookupEnv)
}

// unknownEnv lists the LEASEHOLD_* variables that set no flag of the
// node: the tree command's own, and those the scheduler sets for task
// commands, aside.
func unknownEnv(fs *flag.FlagSet) []string {
	return flagenv.Unknown(fs, envPrefix, os.Environ(), treeEnvPrefix+"_",
		"LEASEHOLD_TASK", "LEASEHOLD_SLOT", "LEASEHOLD_ATTEMPT", "LEASEHOLD_NODE")
}

// envHelp is the tail of -h: where else each flag comes from.
func envHelp(fs *flag.FlagSet, prefix string, aliases map[string][]string) string {
	return "\nEvery flag can be set from the environment instead; a flag on the command line wins:\n  " +
		strings.Join(flagenv.Describe(fs, prefix, aliases), "\n  ") + "\n"
}

// secretFromFile returns *value, or the contents of file when one is
// given, with trailing newlines dropped (editors and "echo" add one).
// Giving both is an error: one of them would be silently ignored.
func secretFromFile(value *string, valueFlag, file, fileFlag string) error {
	if file == "" {
		return nil
	}
	if *value != "" {
		return fmt.Errorf("--%s and --%s both set (by flag or environment): keep one", valueFlag, fileFlag)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--%s: %w", fileFlag, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return fmt.Errorf("--%s %s: the file is empty", fileFlag, file)
	}
	*value = s
	return nil
}
