"""Job-kind executors: run one attempt and report an Outcome; they never write rows."""
