# The report wordstat prints. The summary task fills this in.
report() {
    echo "wordstat: nothing to report yet"
}
