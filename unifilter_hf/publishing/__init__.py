"""Publishing: dataset cards and Hub pushes for what the jobs wrote (the HTML report is `unifilter_hf.report`)."""
