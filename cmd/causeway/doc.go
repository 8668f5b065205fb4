// Command causeway is Causeway's single binary.
//
//	causeway serve                 start a node (flags: --region, --data, --listen, ...)
//	causeway demo                  three regions and a live dashboard (internal/demo); --script runs a scenario
//	causeway put KEY VALUE         write
//	causeway get KEY               read
//	causeway del KEY               delete
//	causeway status                describe the node
//
// Client verbs keep the session's causal token in a session file (--session,
// default ~/.causeway/session.json), so consecutive commands read their own
// writes; --json prints responses for scripts. `causeway --help` and
// `causeway serve --help` list every flag with its default.
//
// serve turns its flags into one internal/process.Config; internal/process,
// the composition root, builds gossip, the linearizable tier and the
// region's node from it and serves them.
package main
