"""The rehearsal fleet: real Debian hosts in systemd-nspawn containers on this machine."""
