package replica

import "fmt"

// UnsafeSkipDependenciesEnv names the environment variable that turns on
// Config.UnsafeSkipDependencies in `causeway serve` when set to 1. The
// switch breaks causal consistency on purpose: fault campaigns
// (`causeway verify`) use it to prove that their checkers catch a store
// that applies remote writes before their causal past. It works only
// together with fault injection.
const UnsafeSkipDependenciesEnv = "CAUSEWAY_UNSAFE_SKIP_DEPENDENCIES"

// UnsafeSkipDependenciesWarning is logged (level WARN) by a node whose
// UnsafeSkipDependencies switch was turned on through the environment, so
// that the switch is never on unnoticed, and so that a campaign can confirm
// the binary it runs honours it.
const UnsafeSkipDependenciesWarning = "UNSAFE: remote writes are applied without waiting for their causal past; causal consistency is broken on purpose"

// ApplyUnsafeSwitches turns on the test-only switches that getenv (os.Getenv
// in `causeway serve`) names. A switch is refused on a node without
// FaultInjection, and a value other than 0, 1 or empty is refused, so that
// a typo never leaves a production node silently broken or a test silently
// toothless.
func (c *Config) ApplyUnsafeSwitches(getenv func(string) string) error {
	switch v := getenv(UnsafeSkipDependenciesEnv); v {
	case "", "0":
		return nil
	case "1":
	default:
		return fmt.Errorf("%s=%q: set it to 1 to turn the switch on, or leave it unset", UnsafeSkipDependenciesEnv, v)
	}
	if !c.FaultInjection {
		return fmt.Errorf("%s is a fault-injection test hook; add --fault-injection", UnsafeSkipDependenciesEnv)
	}
	c.UnsafeSkipDependencies = true
	if c.Logger != nil {
		c.Logger.Warn(UnsafeSkipDependenciesWarning, "env", UnsafeSkipDependenciesEnv)
	}
	return nil
}
