#!/usr/bin/env bash
# Render a dispatch work order (or the index) as it prints: XLSX -> PDF with LibreOffice headless (it applies the
# sheet's page setup: landscape, one page wide, title and header rows on every page), then each page -> PNG.
#
#   scripts/render_work_order.sh WORK_ORDER.xlsx [OUT_DIR]
#   scripts/render_work_order.sh demo/lake/exports/dispatch/nightly-20220515T010000/index.xlsx /tmp/print
#
# Writes OUT_DIR/<name>.pdf and OUT_DIR/<name>-<page>.png (default OUT_DIR: a folder beside the file named
# print/) and prints their paths. Needs `soffice` and `pdftoppm`: on Debian/Ubuntu
#   apt-get install --no-install-recommends libreoffice-calc poppler-utils fonts-noto-cjk
# (the CJK font, or the Chinese prints as boxes). For looking at the print view only: CI does not need it.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
src=$1
[[ -f "$src" ]] || { echo "render_work_order: no such file: $src" >&2; exit 2; }
out=${2:-$(dirname "$src")/print}
for tool in soffice pdftoppm; do
    command -v "$tool" >/dev/null || {
        echo "render_work_order: $tool not found; install libreoffice-calc poppler-utils fonts-noto-cjk" >&2
        exit 2
    }
done
mkdir -p "$out"
name=$(basename "${src%.*}")
# a profile of its own: a LibreOffice the user has open (or a first-run dialog) must not get in the way
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
soffice -env:UserInstallation="file://$profile" --headless --convert-to pdf --outdir "$out" "$src" >/dev/null
pdf="$out/$name.pdf"
[[ -f "$pdf" ]] || { echo "render_work_order: LibreOffice wrote no PDF for $src" >&2; exit 1; }
rm -f "$out/$name"-*.png
pdftoppm -png -r "${RENDER_DPI:-80}" "$pdf" "$out/$name"
echo "$pdf"
ls "$out/$name"-*.png
