. tests/helpers.sh
expect "$(format_stat words 3)" "words: 3"
