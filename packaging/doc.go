// Package packaging holds simproof's package recipes: nfpm (deb, rpm, apk),
// OpenWrt and Yocto, plus the OpenRC script and polkit rule they ship. It has
// no Go API; its tests build the packages and prove them sound: contents,
// static binaries of the right architecture, the systemd units verified and
// sandbox-scored inside the extracted package tree, the system user and
// directories they need, and the polkit rule's decisions. See README.md.
package packaging
