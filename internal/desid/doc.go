// Package desid parses Azure Disk Encryption Set resource IDs and explains, segment by segment, what
// is wrong with one that does not parse. Users paste these IDs by hand from the portal, so the
// common mistakes (documentation placeholders, a Key Vault key URL, a disk ID, a trailing slash, an
// empty string left by a preset) each get a message that names the fix.
package desid
