// Package pki is Causeway's certificates and client tokens: a cluster CA,
// node certificates that name a region, client certificates and bearer
// tokens that name a role, and the one reading of who a certificate or
// token says its holder is.
//
// A certs directory holds (file modes as written):
//
//	ca.crt                 the cluster CA certificate (0644)
//	ca.key                 its private key (0600); needed only to issue certificates
//	node.crt, node.key     this node's certificate and key (0644, 0600)
//	client.NAME.crt/.key   a client's certificate and key (0644, 0600)
//	gossip.key             the key that encrypts and authenticates gossip (0600)
//	tokens.json            client bearer tokens, as SHA-256 hashes with their role (0600)
//
// Keys are ECDSA P-256. A node certificate is valid for server and client
// authentication (a node both serves and dials), for the hosts it was
// created with, and carries the identity URI causeway:node:REGION; a
// client certificate carries causeway:client:NAME:ROLE and is valid for
// client authentication only. Identify reads the identity back and is the
// only place that does. What guarantees: a certificate that does not chain
// to the CA, has expired, or carries no identity (or two) has no identity
// at all; a client certificate never passes for a node's.
package pki
