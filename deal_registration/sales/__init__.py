"""Sale registration: the vendor's serial registry, partners' sale claims judged serial by
serial, proof attachments, review decisions and internal risk flags."""
