#!/usr/bin/env bash
# Java 17+ for Splink's Spark backend (train/relink --engine spark, and their tests).
# Present: nothing to do. Missing: install Debian's headless JRE when run as root, else say how.
set -euo pipefail
version() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if command -v java >/dev/null && [ "$(version)" -ge 17 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "ensure_java: installing openjdk-17-jre-headless for Spark" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    exit 0
fi
echo "ensure_java: Spark needs Java 17 or later; install a JDK (e.g. apt-get install openjdk-17-jre-headless)" >&2
exit 1
