// Package flagenv fills in the flags that a command line left unset from
// environment variables, so that a service manager (systemd's
// EnvironmentFile, a Kubernetes env: list) can configure a binary without
// putting anything, secrets least of all, in its argv.
//
// The rule is one line: flag --some-name is read from PREFIX_SOME_NAME
// (upper case, '-' becomes '_'). A flag may also have aliases, read when
// the prefixed variable is unset (the scheduler honours etcdctl's
// ETCDCTL_ENDPOINTS and friends this way). A flag given on the command
// line always wins; a variable that is set, even to the empty string,
// counts, so that an environment file can clear a default.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// Name returns the variable that sets flag name: prefix + "_" + NAME.
func Name(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Apply sets every flag of fs that was not given on the command line (call
// it after fs.Parse) from the first of Name(prefix, flag) and
// aliases[flag] that lookup finds; lookup is os.LookupEnv outside tests.
// It returns the first value a flag rejects, naming the variable; it never
// repeats a value, which may be a secret.
func Apply(fs *flag.FlagSet, prefix string, aliases map[string][]string, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name := range aliases {
		if fs.Lookup(name) == nil {
			return fmt.Errorf("flagenv: alias for unknown flag --%s", name)
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		for _, v := range append([]string{Name(prefix, f.Name)}, aliases[f.Name]...) {
			value, ok := lookup(v)
			if !ok {
				continue
			}
			if serr := fs.Set(f.Name, value); serr != nil {
				err = fmt.Errorf("$%s: invalid value for --%s: %s", v, f.Name, reason(serr))
			}
			return
		}
	})
	return err
}

// reason says why a value was rejected without quoting it: flag.Value
// errors may echo their input, and a variable may hold a secret set under
// the wrong name by mistake. The standard flag types say only "parse
// error".
func reason(err error) string {
	msg := err.Error()
	if msg == "parse error" || strings.Contains(msg, `"`) {
		return "not a valid value (see -h)"
	}
	return msg
}

// Unknown returns the variables of environ ("NAME=value" pairs, as
// os.Environ gives) that start with prefix + "_" but set no flag of fs and
// start with none of ignore: most likely misspelt settings, which would
// otherwise be silently ignored.
func Unknown(fs *flag.FlagSet, prefix string, environ []string, ignore ...string) []string {
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { known[Name(prefix, f.Name)] = true })
	var out []string
next:
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, prefix+"_") || known[name] {
			continue
		}
		for _, p := range ignore {
			if strings.HasPrefix(name, p) {
				continue next
			}
		}
		out = append(out, name)
	}
	return out
}

// Describe returns one line per flag of fs naming the variables that set
// it, in order of precedence, for a -h text or the docs.
func Describe(fs *flag.FlagSet, prefix string, aliases map[string][]string) []string {
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		vars := append([]string{"$" + Name(prefix, f.Name)}, aliases[f.Name]...)
		for i := 1; i < len(vars); i++ {
			vars[i] = "$" + vars[i]
		}
		lines = append(lines, fmt.Sprintf("--%s: %s", f.Name, strings.Join(vars, ", then ")))
	})
	return lines
}
