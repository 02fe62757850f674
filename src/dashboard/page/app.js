// the page script
