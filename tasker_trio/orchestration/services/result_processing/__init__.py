"""Result processing: record a worker's result and re-evaluate the task."""
