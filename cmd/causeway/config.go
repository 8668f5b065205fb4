package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A configuration file for `causeway serve --config FILE` is YAML: a map
// from flag names (without dashes) to values. A list value is joined with
// commas (peers, join). Precedence, per setting: a flag on the command
// line, then the setting's CAUSEWAY_* environment variable (where it has
// one), then the file, then the default. --print-config prints the result
// with where each value came from, and exits.

// serveConfigFlags defines --config and --print-config on serve's flags.
func serveConfigFlags(fs *flag.FlagSet) (file *string, print *bool) {
	file = fs.String("config", envOr("CAUSEWAY_CONFIG", ""), "YAML file of settings (flag name: value); a flag on the command line, then an environment variable, win over it (env CAUSEWAY_CONFIG)")
	print = fs.Bool("print-config", false, "print the effective configuration, and where each value comes from, then exit")
	return file, print
}

// secretFlags are printed redacted by --print-config.
var secretFlags = map[string]bool{"gossip-key": true}

// envName is the environment variable a serve flag reads, if its usage
// names one.
func envName(f *flag.Flag) (string, bool) {
	name := "CAUSEWAY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
	return name, strings.Contains(f.Usage, "env "+name)
}

// applyServeConfig fills from the file every flag neither the command line
// nor its environment variable set, and prints the configuration if asked.
// ok is false when serve must exit with code.
func applyServeConfig(fs *flag.FlagSet, file string, print bool, stdout, stderr io.Writer) (code int, ok bool) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	source := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		switch env, has := envName(f); {
		case set[f.Name]:
			source[f.Name] = "flag"
		case has && os.Getenv(env) != "":
			source[f.Name] = "env " + env
		default:
			source[f.Name] = "default"
		}
	})
	if file != "" {
		values, err := readConfigFile(file)
		if err != nil {
			fmt.Fprintf(stderr, "causeway serve: --config %s: %v\n", file, err)
			return exitUsage, false
		}
		var unknown []string
		for _, name := range slices.Sorted(mapsKeys(values)) {
			f := fs.Lookup(name)
			if f == nil || name == "config" || name == "print-config" {
				unknown = append(unknown, name)
				continue
			}
			if source[name] != "default" {
				continue // the command line or the environment wins
			}
			if err := fs.Set(name, values[name]); err != nil {
				fmt.Fprintf(stderr, "causeway serve: --config %s: %s: invalid value %q: %v\n", file, name, values[name], err)
				return exitUsage, false
			}
			source[name] = "file"
		}
		if len(unknown) > 0 {
			fmt.Fprintf(stderr, "causeway serve: --config %s: unknown settings %s (settings are serve's flag names: causeway serve --help)\n",
				file, strings.Join(unknown, ", "))
			return exitUsage, false
		}
	}
	if print {
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "config" || f.Name == "print-config" {
				return
			}
			value := f.Value.String()
			if secretFlags[f.Name] && value != "" {
				value = "<redacted>"
			}
			fmt.Fprintf(stdout, "%s: %s # %s\n", f.Name, yamlScalar(value), source[f.Name])
		})
		return exitOK, false
	}
	return exitOK, true
}

// readConfigFile reads a YAML map of settings, each a scalar or a list of
// scalars (joined with commas).
func readConfigFile(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not a YAML map of settings: %w", err)
	}
	out := make(map[string]string, len(doc))
	for k, v := range doc {
		switch v := v.(type) {
		case nil:
			out[k] = ""
		case []any:
			parts := make([]string, 0, len(v))
			for _, e := range v {
				if _, nested := e.(map[string]any); nested {
					return nil, fmt.Errorf("%s: a list of scalars, not of maps", k)
				}
				parts = append(parts, fmt.Sprint(e))
			}
			out[k] = strings.Join(parts, ",")
		case map[string]any:
			return nil, fmt.Errorf("%s: a scalar or a list, not a map", k)
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	if len(out) == 0 && strings.TrimSpace(string(raw)) != "" {
		return nil, errors.New("no settings in it")
	}
	return out, nil
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// yamlScalar quotes a value so that the printed configuration reads back
// as the same strings.
func yamlScalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}
